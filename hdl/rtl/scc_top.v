// scc_top: the SCC accelerator: systolic array, sequencer, ECC scratchpad,
// scrubber and registers behind one AXI4-Lite slave (docs/REGISTERS.md).
//
// Bus map: registers at 0x00000-0x000FF, scratchpad window at 0x80000-0xFFFFF;
// the two low address bits are ignored; a write with any WSTRB other than
// 4'b1111 is answered SLVERR by the bus slave and reaches nothing.
// A SOFT_RESET write resets everything but the AXI4-Lite slave (u_axil, so
// the write is answered) and the banks (cells and read registers have no
// reset); it does clear the scratchpad's bus staging and read latch (u_spm).
// Fault sites (docs/REGISTERS.md, "Fault sites"): u_spm.u_bank{0,1}.mem_q,
// u_array.g_row[i].g_col[j].u_pe.acc_q, u_regs.u_<register>.q_q[k],
// u_seq.u_<state>.q_q[k].

`default_nettype none

module scc_top #(
  // Array size N x N; a power of two from 2 to 16.
  parameter integer N = 4,
  // Words per scratchpad bank; a power of two, at most 32768, and both banks
  // within the bus window: 2 * BANK_WORDS * ceil(8N / 32) <= 131072.
  parameter integer BANK_WORDS = 1024,
  // Words bit-interleaved in one physical memory row: 1, 2, 4 or 8.
  parameter integer INTERLEAVE = 1,
  // 1: SECDED ECC on every scratchpad word.
  parameter integer ECC_EN = 1,
  // 1: background scrubber (needs ECC_EN).
  parameter integer SCRUB_EN = 1,
  // 1: triple modular redundancy on the control state.
  parameter integer TMR_EN = 1
) (
  input  wire        clk_i,
  input  wire        rst_ni,
  input  wire [19:0] s_axil_awaddr,
  input  wire [2:0]  s_axil_awprot,
  input  wire        s_axil_awvalid,
  output wire        s_axil_awready,
  input  wire [31:0] s_axil_wdata,
  input  wire [3:0]  s_axil_wstrb,
  input  wire        s_axil_wvalid,
  output wire        s_axil_wready,
  output wire [1:0]  s_axil_bresp,
  output wire        s_axil_bvalid,
  input  wire        s_axil_bready,
  input  wire [19:0] s_axil_araddr,
  input  wire [2:0]  s_axil_arprot,
  input  wire        s_axil_arvalid,
  output wire        s_axil_arready,
  output wire [31:0] s_axil_rdata,
  output wire [1:0]  s_axil_rresp,
  output wire        s_axil_rvalid,
  input  wire        s_axil_rready,
  output wire        irq_o
);

  localparam integer DW = 8 * N;
  localparam integer S  = (DW + 31) / 32;
  localparam integer LS = (S == 4) ? 2 : (S == 2) ? 1 : 0;
  // 32-bit bus words in the scratchpad window (0x80000-0xFFFFF).
  localparam integer WINDOW_PARTS = 131072;

  initial begin
    if (SCRUB_EN != 0 && ECC_EN == 0) begin
      $error("%m: SCRUB_EN needs ECC_EN");
      $finish;
    end
    if (BANK_WORDS > 32768) begin
      $error("%m: BANK_WORDS must be at most 32768, got %0d", BANK_WORDS);
      $finish;
    end
    if (2 * BANK_WORDS * S > WINDOW_PARTS) begin
      $error("%m: 2 * BANK_WORDS * ceil(8N/32) = %0d exceeds the %0d bus words of the window",
             2 * BANK_WORDS * S, WINDOW_PARTS);
      $finish;
    end
  end

  // ---- Reset ------------------------------------------------------------
  wire soft_reset;
  reg  soft_rst_q;
  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) soft_rst_q <= 1'b0;
    else         soft_rst_q <= soft_reset;
  end
  wire rst_n = rst_ni & ~soft_rst_q;

  // ---- Bus --------------------------------------------------------------
  wire        req;
  wire        we;
  // The two low address bits are ignored.
  /* verilator lint_off UNUSEDSIGNAL */
  wire [19:0] addr;
  /* verilator lint_on UNUSEDSIGNAL */
  wire [31:0] wdata;
  wire        ack;
  wire [31:0] rdata;
  wire        err;

  scc_axil_slave #(.AW(20)) u_axil (
    .clk_i (clk_i), .rst_ni (rst_ni),
    .s_axil_awaddr (s_axil_awaddr), .s_axil_awprot (s_axil_awprot),
    .s_axil_awvalid (s_axil_awvalid), .s_axil_awready (s_axil_awready),
    .s_axil_wdata (s_axil_wdata), .s_axil_wstrb (s_axil_wstrb),
    .s_axil_wvalid (s_axil_wvalid), .s_axil_wready (s_axil_wready),
    .s_axil_bresp (s_axil_bresp), .s_axil_bvalid (s_axil_bvalid),
    .s_axil_bready (s_axil_bready),
    .s_axil_araddr (s_axil_araddr), .s_axil_arprot (s_axil_arprot),
    .s_axil_arvalid (s_axil_arvalid), .s_axil_arready (s_axil_arready),
    .s_axil_rdata (s_axil_rdata), .s_axil_rresp (s_axil_rresp),
    .s_axil_rvalid (s_axil_rvalid), .s_axil_rready (s_axil_rready),
    .req_o (req), .we_o (we), .addr_o (addr), .wdata_o (wdata),
    .ack_i (ack), .rdata_i (rdata), .err_i (err)
  );

  wire sel_spm = addr[19];
  wire sel_reg = (addr[19:8] == 12'd0);

  wire [31:0] reg_rdata;
  wire        reg_err;
  wire        spm_ack;
  wire [31:0] spm_rdata;
  wire        spm_err;

  assign ack   = sel_spm ? spm_ack   : req;
  assign rdata = sel_spm ? spm_rdata : reg_rdata;
  assign err   = sel_spm ? spm_err   : (sel_reg ? reg_err : 1'b1);

  // Scratchpad word and part from a window byte address.
  /* verilator lint_off UNUSEDSIGNAL */
  wire [16:0] win_index = addr[18:2];
  /* verilator lint_on UNUSEDSIGNAL */
  wire [16:0] bus_word  = win_index >> LS;
  wire [1:0]  bus_part  = (LS == 0) ? 2'd0 : win_index[1:0] & ((2'd1 << LS) - 2'd1);

  // ---- Blocks -----------------------------------------------------------
  wire        busy, done, error;
  wire [3:0]  err_code;
  wire        start, clr_done, clr_error, clear_counters;
  wire        irq_en;
  wire [11:0] m, k, n;
  wire [15:0] a_addr, b_addr, bias_addr, c_addr, scrub_period;
  wire        bias_en, relu, out32;
  wire [4:0]  shift;
  wire        job_start, cycle, macs_en, seq_mismatch;
  wire [31:0] macs_add;
  wire [1:0]  corr_inc, uncorr_inc;
  wire [15:0] scrub_ptr;
  wire [31:0] scrub_passes;

  scc_regs #(
    .N (N), .BANK_WORDS (BANK_WORDS), .INTERLEAVE (INTERLEAVE),
    .ECC_EN (ECC_EN), .SCRUB_EN (SCRUB_EN), .TMR_EN (TMR_EN)
  ) u_regs (
    .clk_i (clk_i), .rst_ni (rst_n),
    .req_i (req && sel_reg), .we_i (we), .addr_i ({addr[7:2], 2'b00}), .wdata_i (wdata),
    .rdata_o (reg_rdata), .err_o (reg_err),
    .busy_i (busy), .done_i (done), .error_i (error), .err_code_i (err_code),
    .start_o (start), .soft_reset_o (soft_reset), .clr_done_o (clr_done),
    .clr_error_o (clr_error), .clear_counters_o (clear_counters),
    .irq_en_o (irq_en), .m_o (m), .k_o (k), .n_o (n),
    .a_addr_o (a_addr), .b_addr_o (b_addr), .bias_addr_o (bias_addr), .c_addr_o (c_addr),
    .bias_en_o (bias_en), .relu_o (relu), .out32_o (out32), .shift_o (shift),
    .scrub_period_o (scrub_period),
    .job_start_i (job_start), .cycle_i (cycle), .macs_en_i (macs_en), .macs_add_i (macs_add),
    .corr_inc_i (corr_inc), .uncorr_inc_i (uncorr_inc), .seq_mismatch_i (seq_mismatch),
    .scrub_ptr_i (scrub_ptr), .scrub_passes_i (scrub_passes)
  );

  wire          m0_en, m1_en, mw_en;
  wire [15:0]   m0_addr, m1_addr, mw_addr;
  wire [DW-1:0] mw_wdata;
  wire          r0_valid, r0_double, r1_valid, r1_double;
  wire [DW-1:0] r0_data, bank0_data, bank1_data;
  wire          arr_valid, arr_first;
  wire [$clog2(N)-1:0] arr_row;
  wire [32*N-1:0]       arr_acc;

  scc_seq #(.N (N), .BANK_WORDS (BANK_WORDS), .TMR_EN (TMR_EN)) u_seq (
    .clk_i (clk_i), .rst_ni (rst_n),
    .start_i (start), .clr_done_i (clr_done), .clr_error_i (clr_error),
    .m_i (m), .k_i (k), .n_i (n),
    .a_addr_i (a_addr), .b_addr_i (b_addr), .bias_addr_i (bias_addr), .c_addr_i (c_addr),
    .bias_en_i (bias_en), .relu_i (relu), .out32_i (out32), .shift_i (shift),
    .busy_o (busy), .done_o (done), .error_o (error), .err_code_o (err_code),
    .m0_en_o (m0_en), .m0_addr_o (m0_addr), .m1_en_o (m1_en), .m1_addr_o (m1_addr),
    .mw_en_o (mw_en), .mw_addr_o (mw_addr), .mw_wdata_o (mw_wdata),
    .r0_valid_i (r0_valid), .r0_data_i (r0_data), .r0_double_i (r0_double),
    .r1_valid_i (r1_valid), .r1_double_i (r1_double),
    .arr_valid_o (arr_valid), .arr_first_o (arr_first),
    .arr_row_o (arr_row), .arr_row_i (arr_acc),
    .job_start_o (job_start), .cycle_o (cycle), .macs_en_o (macs_en), .macs_add_o (macs_add),
    .mismatch_o (seq_mismatch)
  );

  scc_array #(.N (N)) u_array (
    .clk_i (clk_i), .rst_ni (rst_n), .valid_i (arr_valid), .first_i (arr_first),
    .a_i (bank0_data), .b_i (bank1_data), .row_sel_i (arr_row), .row_o (arr_acc)
  );

  wire        scrub_active, scrub_read, scrub_write, scrub_single;
  wire [15:0] scrub_addr;

  generate
    if (SCRUB_EN != 0) begin : g_scrub
      scc_scrub #(.SPM_WORDS (2 * BANK_WORDS)) u_scrub (
        .clk_i (clk_i), .rst_ni (rst_n), .clear_i (clear_counters),
        // A START stops the scrubber before its next step.
        .busy_i (busy || start), .period_i (scrub_period),
        .single_i (scrub_single),
        .active_o (scrub_active), .read_o (scrub_read), .write_o (scrub_write),
        .addr_o (scrub_addr), .ptr_o (scrub_ptr), .passes_o (scrub_passes)
      );
    end else begin : g_no_scrub
      assign scrub_active = 1'b0;
      assign scrub_read   = 1'b0;
      assign scrub_write  = 1'b0;
      assign scrub_addr   = 16'd0;
      assign scrub_ptr    = 16'd0;
      assign scrub_passes = 32'd0;
      /* verilator lint_off UNUSEDSIGNAL */
      wire unused_scrub = scrub_single | clear_counters | (|scrub_period);
      /* verilator lint_on UNUSEDSIGNAL */
    end
  endgenerate

  scc_spm #(
    .N (N), .BANK_WORDS (BANK_WORDS), .INTERLEAVE (INTERLEAVE), .ECC_EN (ECC_EN)
  ) u_spm (
    .clk_i (clk_i), .rst_ni (rst_n), .busy_i (busy),
    .m0_en_i (m0_en), .m0_addr_i (m0_addr), .m1_en_i (m1_en), .m1_addr_i (m1_addr),
    .mw_en_i (mw_en), .mw_addr_i (mw_addr), .mw_wdata_i (mw_wdata),
    .r0_valid_o (r0_valid), .r0_data_o (r0_data), .r0_double_o (r0_double),
    .r1_valid_o (r1_valid), .r1_double_o (r1_double),
    .bank0_data_o (bank0_data), .bank1_data_o (bank1_data),
    .bus_req_i (req && sel_spm), .bus_we_i (we), .bus_word_i (bus_word),
    .bus_part_i (bus_part), .bus_wdata_i (wdata),
    .bus_ack_o (spm_ack), .bus_rdata_o (spm_rdata), .bus_err_o (spm_err),
    .scrub_active_i (scrub_active), .scrub_read_i (scrub_read), .scrub_write_i (scrub_write),
    .scrub_addr_i (scrub_addr), .scrub_single_o (scrub_single),
    .corr_inc_o (corr_inc), .uncorr_inc_o (uncorr_inc)
  );

  assign irq_o = irq_en & done;

endmodule

`default_nettype wire
