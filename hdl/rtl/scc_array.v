// scc_array: N x N output-stationary systolic array of scc_pe.
//
// a_i carries one int8 per row (byte i for row i), b_i one int8 per column.
// Row i's operand enters i cycles late and column j's j cycles late, so the
// product of step t reaches PE (i, j) t + i + j cycles after it enters and is
// accumulated at the end of that cycle; first_i tags the beat that starts a
// tile and travels with row i's operand. row_o holds the result registers of
// row row_sel_i, PE (row_sel_i, j) at bits [32*j +: 32] (combinational).
// Protection: none. Fault sites: each PE's acc_q and out_q; the skew registers.

`default_nettype none

module scc_array #(
  // Rows and columns of processing elements.
  parameter integer N = 4,
  // Row select bits (derived).
  parameter integer RSW = (N > 1) ? $clog2(N) : 1
) (
  input  wire              clk_i,
  input  wire              rst_ni,
  input  wire              valid_i,
  input  wire              first_i,
  input  wire [8*N-1:0]    a_i,
  input  wire [8*N-1:0]    b_i,
  input  wire [RSW-1:0]    row_sel_i,
  output wire [32*N-1:0]   row_o
);

  // Operands entering the array edges after the skew: row i's a (with its
  // valid and first bits) and column j's b.
  wire [8*N-1:0] a_edge;
  wire [N-1:0]   v_edge;
  wire [N-1:0]   f_edge;
  wire [8*N-1:0] b_edge;

  genvar i, j;
  generate
    for (i = 0; i < N; i = i + 1) begin : g_skew
      if (i == 0) begin : g_direct
        assign a_edge[7:0] = a_i[7:0];
        assign v_edge[0]   = valid_i;
        assign f_edge[0]   = first_i;
        assign b_edge[7:0] = b_i[7:0];
      end else begin : g_delay
        // i stages for row i's operand (with its first and valid bits) and
        // column i's; the oldest stage sits in the top bits.
        reg  [10*i-1:0] a_sr_q;
        reg  [8*i-1:0]  b_sr_q;
        wire [10*i-1:0] a_sr_d;
        wire [8*i-1:0]  b_sr_d;
        if (i == 1) begin : g_one
          assign a_sr_d = {first_i, valid_i, a_i[8*i +: 8]};
          assign b_sr_d = b_i[8*i +: 8];
        end else begin : g_more
          assign a_sr_d = {a_sr_q[10*i-11:0], first_i, valid_i, a_i[8*i +: 8]};
          assign b_sr_d = {b_sr_q[8*i-9:0], b_i[8*i +: 8]};
        end
        always @(posedge clk_i or negedge rst_ni) begin
          if (!rst_ni) begin
            a_sr_q <= {10*i{1'b0}};
            b_sr_q <= {8*i{1'b0}};
          end else begin
            a_sr_q <= a_sr_d;
            b_sr_q <= b_sr_d;
          end
        end
        assign a_edge[8*i +: 8] = a_sr_q[10*i-3 -: 8];
        assign v_edge[i]        = a_sr_q[10*i-2];
        assign f_edge[i]        = a_sr_q[10*i-1];
        assign b_edge[8*i +: 8] = b_sr_q[8*i-1 -: 8];
      end
    end

    // Each PE's outputs are wires of its own generate scope; a flows right and
    // b flows down. (Scalar wires per scope keep the simulator's fan-out local,
    // which a two-dimensional net array would not.)
    for (i = 0; i < N; i = i + 1) begin : g_row
      for (j = 0; j < N; j = j + 1) begin : g_col
        // The right column's a and the bottom row's b leave the array unused.
        /* verilator lint_off UNUSEDSIGNAL */
        wire [7:0] a_out;
        wire       v_out;
        wire       f_out;
        wire [7:0] b_out;
        /* verilator lint_on UNUSEDSIGNAL */
        wire [31:0] result;
        wire [7:0] a_in;
        wire       v_in;
        wire       f_in;
        wire [7:0] b_in;
        if (j == 0) begin : g_left
          assign a_in = a_edge[8*i +: 8];
          assign v_in = v_edge[i];
          assign f_in = f_edge[i];
        end else begin : g_inner_a
          assign a_in = g_row[i].g_col[j-1].a_out;
          assign v_in = g_row[i].g_col[j-1].v_out;
          assign f_in = g_row[i].g_col[j-1].f_out;
        end
        if (i == 0) begin : g_top
          assign b_in = b_edge[8*j +: 8];
        end else begin : g_inner_b
          assign b_in = g_row[i-1].g_col[j].b_out;
        end
        scc_pe u_pe (
          .clk_i   (clk_i),
          .rst_ni  (rst_ni),
          .a_i     (a_in),
          .valid_i (v_in),
          .first_i (f_in),
          .b_i     (b_in),
          .a_o     (a_out),
          .valid_o (v_out),
          .first_o (f_out),
          .b_o     (b_out),
          .out_o   (result)
        );
      end
    end

    // Row read-out: one vector per column, so that an accumulator update only
    // re-evaluates its own column's selection.
    for (j = 0; j < N; j = j + 1) begin : g_out
      wire [32*N-1:0] column;
      for (i = 0; i < N; i = i + 1) begin : g_gather
        assign column[32*i +: 32] = g_row[i].g_col[j].result;
      end
      assign row_o[32*j +: 32] = column[32*row_sel_i +: 32];
    end
  endgenerate

endmodule

`default_nettype wire
