`timescale 1ns / 1ps
`default_nettype none
// Weight-stationary processing element of an axc systolic array.
//
// Registers: the stationary weight (w_q, loaded by shifting down the column),
// the passing input (x_q, to the right neighbour) and the partial sum (ps_q,
// to the PE below). At every clock edge
//     ps_q <= ps_in + (x_valid && w_valid ? p : 0),   p = mul(x_in, w_q)
//     x_q  <= x_in
// The multiplier sits beside the PE (mul_a, mul_b -> mul_p), so one cell
// serves every multiplier of the library.
//
// Fault ports: when f_hit[k] is high, register k (0 weight, 1 input,
// 2 partial sum) is written with ((d & f_and) | f_or) ^ f_xor instead of d.
// The masks are the accumulator's width and cut to each register's width.
// Tied to zero, they cost nothing after synthesis.
module axc_pe_ws #(
    parameter integer A_W = 9,
    parameter integer B_W = 9,
    parameter integer P_W = 18,
    parameter integer ACC_W = 32
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             load,
    input  wire [B_W-1:0]   w_in,
    input  wire             wv_in,
    output wire [B_W-1:0]   w_out,
    output wire             wv_out,
    input  wire [A_W-1:0]   x_in,
    input  wire             xv_in,
    output wire [A_W-1:0]   x_out,
    output wire             xv_out,
    input  wire [ACC_W-1:0] ps_in,
    output wire [ACC_W-1:0] ps_out,
    output wire [A_W-1:0]   mul_a,
    output wire [B_W-1:0]   mul_b,
    input  wire [P_W-1:0]   mul_p,
    input  wire [2:0]       f_hit,
    input  wire [ACC_W-1:0] f_and,
    input  wire [ACC_W-1:0] f_or,
    input  wire [ACC_W-1:0] f_xor
);
    reg [B_W-1:0]   w_q;
    reg             wv_q;
    reg [A_W-1:0]   x_q;
    reg             xv_q;
    reg [ACC_W-1:0] ps_q;

    wire [B_W-1:0]   w_d = load ? w_in : w_q;
    wire             both = xv_in & wv_q;
    wire [ACC_W-1:0] prod = both ? {{(ACC_W - P_W){mul_p[P_W-1]}}, mul_p} : {ACC_W{1'b0}};
    wire [ACC_W-1:0] ps_d = ps_in + prod;

    always @(posedge clk) begin
        if (rst) begin
            w_q  <= {B_W{1'b0}};
            wv_q <= 1'b0;
            x_q  <= {A_W{1'b0}};
            xv_q <= 1'b0;
            ps_q <= {ACC_W{1'b0}};
        end else begin
            w_q  <= f_hit[0] ? (((w_d & f_and[B_W-1:0]) | f_or[B_W-1:0]) ^ f_xor[B_W-1:0]) : w_d;
            wv_q <= load ? wv_in : wv_q;
            x_q  <= f_hit[1] ? (((x_in & f_and[A_W-1:0]) | f_or[A_W-1:0]) ^ f_xor[A_W-1:0]) : x_in;
            xv_q <= xv_in;
            ps_q <= f_hit[2] ? (((ps_d & f_and) | f_or) ^ f_xor) : ps_d;
        end
    end

    assign w_out  = w_q;
    assign wv_out = wv_q;
    assign x_out  = x_q;
    assign xv_out = xv_q;
    assign ps_out = ps_q;
    assign mul_a  = x_in;
    assign mul_b  = w_q;
endmodule
`default_nettype wire
