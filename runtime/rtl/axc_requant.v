`timescale 1ns / 1ps
`default_nettype none
// Requantizer (docs/arithmetic.md, "Requantization"), combinational:
//     q = clamp(((acc * M + 2^(S-1)) >>> S) + zp, qmin, qmax)
// M is the 31-bit fixed-point multiplier, 1 <= S <= 62 the right shift; the
// product is formed in 64 bits (|acc| < 2^32, M < 2^31), >>> rounds toward
// minus infinity, so adding 2^(S-1) first rounds half up.
module axc_requant #(
    parameter integer ACC_W = 32,
    parameter integer OUT_W = 8
) (
    input  wire [ACC_W-1:0] acc,
    input  wire [30:0]      mult,
    input  wire [5:0]       shift,
    input  wire [31:0]      zp,
    input  wire [31:0]      qmin,
    input  wire [31:0]      qmax,
    output wire [OUT_W-1:0] q
);
    wire signed [63:0] a = {{(64 - ACC_W){acc[ACC_W-1]}}, acc};
    wire signed [63:0] m = {33'd0, mult};
    wire signed [63:0] half = 64'sd1 <<< (shift - 6'd1);
    wire signed [63:0] scaled = (a * m + half) >>> shift;
    wire signed [63:0] y = scaled + {{32{zp[31]}}, zp};
    wire signed [63:0] lo = {{32{qmin[31]}}, qmin};
    wire signed [63:0] hi = {{32{qmax[31]}}, qmax};
    wire signed [63:0] c = (y < lo) ? lo : (y > hi) ? hi : y;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [63:0] bits = c;
    /* verilator lint_on UNUSEDSIGNAL */
    assign q = bits[OUT_W-1:0];
endmodule
`default_nettype wire
