// scc_free_run: simulation-only testbench that clocks scc_top with its bus idle
// for +cycles=N cycles (the scrubber at work), then ends: the simulator's own speed
// on the chip, with no Python in the loop (make bench compares it with cocotb's).

`timescale 1ns / 1ps
`default_nettype none

module scc_free_run #(
  // Array size.
  parameter integer N = 4,
  // Words per scratchpad bank.
  parameter integer BANK_WORDS = 1024,
  // Scratchpad words bit-interleaved in one physical row.
  parameter integer INTERLEAVE = 1,
  // 1: SECDED on the scratchpad.
  parameter integer ECC_EN = 1,
  // 1: the background scrubber.
  parameter integer SCRUB_EN = 1,
  // 1: control state in three voted copies.
  parameter integer TMR_EN = 1
);

  reg clk = 1'b0;
  reg rst_n = 1'b0;
  integer cycles = 1000;

  always #5 clk = ~clk;

  /* verilator lint_off PINCONNECTEMPTY */
  scc_top #(
    .N(N), .BANK_WORDS(BANK_WORDS), .INTERLEAVE(INTERLEAVE),
    .ECC_EN(ECC_EN), .SCRUB_EN(SCRUB_EN), .TMR_EN(TMR_EN)
  ) u_top (
    .clk_i(clk), .rst_ni(rst_n),
    .s_axil_awaddr(20'd0), .s_axil_awprot(3'd0), .s_axil_awvalid(1'b0), .s_axil_awready(),
    .s_axil_wdata(32'd0), .s_axil_wstrb(4'd0), .s_axil_wvalid(1'b0), .s_axil_wready(),
    .s_axil_bresp(), .s_axil_bvalid(), .s_axil_bready(1'b1),
    .s_axil_araddr(20'd0), .s_axil_arprot(3'd0), .s_axil_arvalid(1'b0), .s_axil_arready(),
    .s_axil_rdata(), .s_axil_rresp(), .s_axil_rvalid(), .s_axil_rready(1'b1),
    .irq_o()
  );
  /* verilator lint_on PINCONNECTEMPTY */

  initial begin
    if (!$value$plusargs("cycles=%d", cycles)) cycles = 1000;
    #20 rst_n = 1'b1;
    repeat (cycles) @(posedge clk);
    $finish;
  end

endmodule

`default_nettype wire
