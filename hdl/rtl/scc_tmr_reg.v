// scc_tmr_reg: a register kept in three copies with a majority vote.
//
// Every cycle all copies load the same next value: d_i when we_i, else the
// voted value. A copy that disagrees is therefore outvoted and repaired at
// the next clock edge; mismatch_o flags the cycle in which it disagreed.
// With TMR_EN = 0 there is one copy and mismatch_o is 0.
// Latency: q_o follows d_i one cycle after we_i.
// Fault sites: each copy q_q[k], bit by bit.

`default_nettype none

module scc_tmr_reg #(
  // Width of the register in bits.
  parameter integer W = 1,
  // Value after reset.
  parameter [W-1:0] RESET = {W{1'b0}},
  // 1: three voted copies; 0: a single copy.
  parameter integer TMR_EN = 1
) (
  input  wire         clk_i,
  input  wire         rst_ni,
  input  wire         we_i,
  input  wire [W-1:0] d_i,
  output wire [W-1:0] q_o,
  output wire         mismatch_o
);

  localparam integer COPIES = (TMR_EN != 0) ? 3 : 1;

  reg  [W-1:0] q_q [0:COPIES-1];
  wire [W-1:0] voted;

  generate
    if (TMR_EN != 0) begin : g_tmr
      assign voted      = (q_q[0] & q_q[1]) | (q_q[1] & q_q[2]) | (q_q[0] & q_q[2]);
      assign mismatch_o = (q_q[0] != q_q[1]) || (q_q[1] != q_q[2]);
    end else begin : g_single
      assign voted      = q_q[0];
      assign mismatch_o = 1'b0;
    end
  endgenerate

  wire [W-1:0] next = we_i ? d_i : voted;

  integer k;
  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      for (k = 0; k < COPIES; k = k + 1) q_q[k] <= RESET;
    end else begin
      for (k = 0; k < COPIES; k = k + 1) q_q[k] <= next;
    end
  end

  assign q_o = voted;

endmodule

`default_nettype wire
