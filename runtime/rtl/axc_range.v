`timescale 1ns / 1ps
`default_nettype none
// Range restriction (docs/protection.md): an output code outside [lo, hi] is
// clipped to the bound (zero = 0) or replaced by 0 (zero = 1). Codes are
// two's complement when SIGNED is 1, unsigned otherwise.
module axc_range #(
    parameter integer W = 8,
    parameter integer SIGNED = 1
) (
    input  wire [W-1:0] q,
    input  wire [W-1:0] lo,
    input  wire [W-1:0] hi,
    input  wire         zero,
    output wire [W-1:0] y
);
    wire below = (SIGNED != 0) ? ($signed(q) < $signed(lo)) : (q < lo);
    wire above = (SIGNED != 0) ? ($signed(q) > $signed(hi)) : (q > hi);
    assign y = zero ? ((below | above) ? {W{1'b0}} : q) : below ? lo : above ? hi : q;
endmodule
`default_nettype wire
