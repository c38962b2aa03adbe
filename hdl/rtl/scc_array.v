// scc_array: N x N output-stationary systolic array of scc_pe.
//
// a_i carries one int8 per row (byte i for row i), b_i one int8 per column.
// Row i's operand enters i cycles late and column j's j cycles late, so the
// product of step t reaches PE (i, j) t + i + j cycles after it enters and is
// accumulated at the end of that cycle. acc_o holds PE (i, j)'s accumulator at
// bits [32*(i*N+j) +: 32].
// Protection: none. Fault sites: each PE's acc_q; the skew registers.

`default_nettype none

module scc_array #(
  // Rows and columns of processing elements.
  parameter integer N = 4
) (
  input  wire              clk_i,
  input  wire              rst_ni,
  input  wire              clear_i,
  input  wire              valid_i,
  input  wire [8*N-1:0]    a_i,
  input  wire [8*N-1:0]    b_i,
  output wire [32*N*N-1:0] acc_o
);

  // Operands between neighbours: a flows right, b flows down.
  wire [7:0] a_w [0:N-1][0:N];
  wire       v_w [0:N-1][0:N];
  wire [7:0] b_w [0:N][0:N-1];

  genvar i, j;
  generate
    for (i = 0; i < N; i = i + 1) begin : g_skew
      if (i == 0) begin : g_direct
        assign a_w[0][0] = a_i[7:0];
        assign v_w[0][0] = valid_i;
        assign b_w[0][0] = b_i[7:0];
      end else begin : g_delay
        // i stages for row i's operand (with its valid bit) and column i's;
        // the oldest stage sits in the top bits.
        reg  [9*i-1:0] a_sr_q;
        reg  [8*i-1:0] b_sr_q;
        wire [9*i-1:0] a_sr_d;
        wire [8*i-1:0] b_sr_d;
        if (i == 1) begin : g_one
          assign a_sr_d = {valid_i, a_i[8*i +: 8]};
          assign b_sr_d = b_i[8*i +: 8];
        end else begin : g_more
          assign a_sr_d = {a_sr_q[9*i-10:0], valid_i, a_i[8*i +: 8]};
          assign b_sr_d = {b_sr_q[8*i-9:0], b_i[8*i +: 8]};
        end
        always @(posedge clk_i or negedge rst_ni) begin
          if (!rst_ni) begin
            a_sr_q <= {9*i{1'b0}};
            b_sr_q <= {8*i{1'b0}};
          end else begin
            a_sr_q <= a_sr_d;
            b_sr_q <= b_sr_d;
          end
        end
        assign a_w[i][0] = a_sr_q[9*i-2 -: 8];
        assign v_w[i][0] = a_sr_q[9*i-1];
        assign b_w[0][i] = b_sr_q[8*i-1 -: 8];
      end
    end

    for (i = 0; i < N; i = i + 1) begin : g_row
      for (j = 0; j < N; j = j + 1) begin : g_col
        scc_pe u_pe (
          .clk_i   (clk_i),
          .rst_ni  (rst_ni),
          .clear_i (clear_i),
          .a_i     (a_w[i][j]),
          .valid_i (v_w[i][j]),
          .b_i     (b_w[i][j]),
          .a_o     (a_w[i][j+1]),
          .valid_o (v_w[i][j+1]),
          .b_o     (b_w[i+1][j]),
          .acc_o   (acc_o[32*(i*N+j) +: 32])
        );
      end
    end
  endgenerate

endmodule

`default_nettype wire
