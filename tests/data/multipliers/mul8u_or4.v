// An 8-bit unsigned multiplier in EvoApproxLib's Verilog convention
// (module mulNu_XXX(A, B, O)): the exact product of the high nibbles and
// the high nibble by the low one; the low-by-low product is OR-approximated.
module mul8u_or4 (A, B, O);
  input [7:0] A;
  input [7:0] B;
  output [15:0] O;
  wire [7:0] hh = A[7:4] * B[7:4];
  wire [7:0] hl = A[7:4] * B[3:0];
  wire [7:0] lh = A[3:0] * B[7:4];
  wire [7:0] ll = {4'b0000, A[3:0] | B[3:0]};
  assign O = ({hh, 8'b0}) + ({4'b0, hl, 4'b0}) + ({4'b0, lh, 4'b0}) + {8'b0, ll};
endmodule
