`timescale 1ns / 1ps
`default_nettype none
// Output-stationary processing element of an axc systolic array.
//
// Registers: the passing input (x_q, to the right), the passing weight (w_q,
// down) and the stationary accumulator (acc_q). At every clock edge
//     acc_q <= clear ? 0 : drain ? acc_in : acc_q + (x_valid && w_valid ? p : 0)
// with p = mul(x_in, w_in). While draining, the accumulators of a column
// shift down one row per cycle and leave at the bottom.
//
// Fault ports: when f_hit[k] is high, register k (0 weight, 1 input,
// 2 accumulator) is written with ((d & f_and) | f_or) ^ f_xor instead of d.
module axc_pe_os #(
    parameter integer A_W = 9,
    parameter integer B_W = 9,
    parameter integer P_W = 18,
    parameter integer ACC_W = 32
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             clear,
    input  wire             drain,
    input  wire [B_W-1:0]   w_in,
    input  wire             wv_in,
    output wire [B_W-1:0]   w_out,
    output wire             wv_out,
    input  wire [A_W-1:0]   x_in,
    input  wire             xv_in,
    output wire [A_W-1:0]   x_out,
    output wire             xv_out,
    input  wire [ACC_W-1:0] acc_in,
    output wire [ACC_W-1:0] acc_out,
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
    reg [ACC_W-1:0] acc_q;

    wire             both = xv_in & wv_in;
    wire [ACC_W-1:0] prod = both ? {{(ACC_W - P_W){mul_p[P_W-1]}}, mul_p} : {ACC_W{1'b0}};
    wire [ACC_W-1:0] acc_d = clear ? {ACC_W{1'b0}} : drain ? acc_in : acc_q + prod;

    always @(posedge clk) begin
        if (rst) begin
            w_q   <= {B_W{1'b0}};
            wv_q  <= 1'b0;
            x_q   <= {A_W{1'b0}};
            xv_q  <= 1'b0;
            acc_q <= {ACC_W{1'b0}};
        end else begin
            w_q   <= f_hit[0] ? (((w_in & f_and[B_W-1:0]) | f_or[B_W-1:0]) ^ f_xor[B_W-1:0]) : w_in;
            wv_q  <= wv_in;
            x_q   <= f_hit[1] ? (((x_in & f_and[A_W-1:0]) | f_or[A_W-1:0]) ^ f_xor[A_W-1:0]) : x_in;
            xv_q  <= xv_in;
            acc_q <= f_hit[2] ? (((acc_d & f_and) | f_or) ^ f_xor) : acc_d;
        end
    end

    assign w_out   = w_q;
    assign wv_out  = wv_q;
    assign x_out   = x_q;
    assign xv_out  = xv_q;
    assign acc_out = acc_q;
    assign mul_a   = x_in;
    assign mul_b   = w_in;
endmodule
`default_nettype wire
