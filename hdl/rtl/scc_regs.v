// scc_regs: control and status registers and counters (docs/REGISTERS.md).
//
// A register access is answered in the cycle it is requested. Configuration
// registers are TMR (u_irq_en .. u_scrub_period) and refuse writes while a
// job runs. Counters count ECC events, TMR disagreements and job progress.
// Protection: configuration registers TMR; counters none.
// Fault sites: the configuration copies q_q[k]; counter bits.

`default_nettype none

module scc_regs #(
  // Build parameters reported in PARAMS and SPM_WORDS.
  parameter integer N = 4,
  parameter integer BANK_WORDS = 1024,
  parameter integer INTERLEAVE = 1,
  parameter integer ECC_EN = 1,
  parameter integer SCRUB_EN = 1,
  parameter integer TMR_EN = 1
) (
  input  wire        clk_i,
  input  wire        rst_ni,
  // Register access (byte offset within the register block).
  input  wire        req_i,
  input  wire        we_i,
  input  wire [7:0]  addr_i,
  // No register has a field above bit 15.
  /* verilator lint_off UNUSEDSIGNAL */
  input  wire [31:0] wdata_i,
  /* verilator lint_on UNUSEDSIGNAL */
  output reg  [31:0] rdata_o,
  output reg         err_o,
  // Sequencer status and commands.
  input  wire        busy_i,
  input  wire        done_i,
  input  wire        error_i,
  input  wire [3:0]  err_code_i,
  output wire        start_o,
  output wire        soft_reset_o,
  output wire        clr_done_o,
  output wire        clr_error_o,
  output wire        clear_counters_o,
  // Voted configuration.
  output wire        irq_en_o,
  output wire [11:0] m_o,
  output wire [11:0] k_o,
  output wire [11:0] n_o,
  output wire [15:0] a_addr_o,
  output wire [15:0] b_addr_o,
  output wire [15:0] bias_addr_o,
  output wire [15:0] c_addr_o,
  output wire        bias_en_o,
  output wire        relu_o,
  output wire        out32_o,
  output wire [4:0]  shift_o,
  output wire [15:0] scrub_period_o,
  // Counter events.
  input  wire        job_start_i,
  input  wire        cycle_i,
  input  wire        macs_en_i,
  input  wire [31:0] macs_add_i,
  input  wire [1:0]  corr_inc_i,
  input  wire [1:0]  uncorr_inc_i,
  input  wire        seq_mismatch_i,
  input  wire [15:0] scrub_ptr_i,
  input  wire [31:0] scrub_passes_i
);

  localparam [7:0] A_ID           = 8'h00;
  localparam [7:0] A_PARAMS       = 8'h04;
  localparam [7:0] A_SPM_WORDS    = 8'h08;
  localparam [7:0] A_CTRL         = 8'h0C;
  localparam [7:0] A_STATUS       = 8'h10;
  localparam [7:0] A_IRQ_EN       = 8'h14;
  localparam [7:0] A_DIM_M        = 8'h18;
  localparam [7:0] A_DIM_K        = 8'h1C;
  localparam [7:0] A_DIM_N        = 8'h20;
  localparam [7:0] A_A_ADDR       = 8'h24;
  localparam [7:0] A_B_ADDR       = 8'h28;
  localparam [7:0] A_BIAS_ADDR    = 8'h2C;
  localparam [7:0] A_C_ADDR       = 8'h30;
  localparam [7:0] A_EPILOGUE     = 8'h34;
  localparam [7:0] A_SCRUB_PERIOD = 8'h38;
  localparam [7:0] A_CYCLES       = 8'h40;
  localparam [7:0] A_MACS         = 8'h44;
  localparam [7:0] A_ECC_CORR     = 8'h48;
  localparam [7:0] A_ECC_UNCORR   = 8'h4C;
  localparam [7:0] A_TMR_MISMATCH = 8'h50;
  localparam [7:0] A_SCRUB_PTR    = 8'h54;
  localparam [7:0] A_SCRUB_PASSES = 8'h58;

  localparam [31:0] ID = 32'h5CC1_0100;
  localparam [3:0]  LOG_IL = (INTERLEAVE == 8) ? 4'd3 : (INTERLEAVE == 4) ? 4'd2 :
                              (INTERLEAVE == 2) ? 4'd1 : 4'd0;
  localparam [4:0]  N5     = N[4:0];
  localparam [0:0]  HAS_ECC   = (ECC_EN != 0);
  localparam [0:0]  HAS_SCRUB = (SCRUB_EN != 0);
  localparam [0:0]  HAS_TMR   = (TMR_EN != 0);
  localparam [31:0] PARAMS = {16'd0, LOG_IL, 1'b0, HAS_TMR, HAS_SCRUB, HAS_ECC, 3'd0, N5};
  localparam [31:0] WORDS = 2 * BANK_WORDS;

  wire wr = req_i && we_i;
  wire is_cfg = (addr_i >= A_IRQ_EN) && (addr_i <= A_SCRUB_PERIOD);
  wire cfg_we = wr && is_cfg && !busy_i;

  // ---- Configuration (TMR) ---------------------------------------------
  wire [9:0] mismatch;
  wire [7:0] epilogue;  // {SHIFT[4:0], OUT_INT32, RELU, BIAS_EN}

  scc_tmr_reg #(.W(1),  .TMR_EN(TMR_EN)) u_irq_en (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_IRQ_EN), .d_i(wdata_i[0]), .q_o(irq_en_o),
    .mismatch_o(mismatch[0]));
  scc_tmr_reg #(.W(12), .TMR_EN(TMR_EN)) u_dim_m (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_DIM_M), .d_i(wdata_i[11:0]), .q_o(m_o),
    .mismatch_o(mismatch[1]));
  scc_tmr_reg #(.W(12), .TMR_EN(TMR_EN)) u_dim_k (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_DIM_K), .d_i(wdata_i[11:0]), .q_o(k_o),
    .mismatch_o(mismatch[2]));
  scc_tmr_reg #(.W(12), .TMR_EN(TMR_EN)) u_dim_n (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_DIM_N), .d_i(wdata_i[11:0]), .q_o(n_o),
    .mismatch_o(mismatch[3]));
  scc_tmr_reg #(.W(16), .TMR_EN(TMR_EN)) u_a_addr (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_A_ADDR), .d_i(wdata_i[15:0]), .q_o(a_addr_o),
    .mismatch_o(mismatch[4]));
  scc_tmr_reg #(.W(16), .TMR_EN(TMR_EN)) u_b_addr (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_B_ADDR), .d_i(wdata_i[15:0]), .q_o(b_addr_o),
    .mismatch_o(mismatch[5]));
  scc_tmr_reg #(.W(16), .TMR_EN(TMR_EN)) u_bias_addr (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_BIAS_ADDR), .d_i(wdata_i[15:0]), .q_o(bias_addr_o),
    .mismatch_o(mismatch[6]));
  scc_tmr_reg #(.W(16), .TMR_EN(TMR_EN)) u_c_addr (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_C_ADDR), .d_i(wdata_i[15:0]), .q_o(c_addr_o),
    .mismatch_o(mismatch[7]));
  scc_tmr_reg #(.W(8),  .TMR_EN(TMR_EN)) u_epilogue (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_EPILOGUE), .d_i({wdata_i[12:8], wdata_i[2:0]}),
    .q_o(epilogue), .mismatch_o(mismatch[8]));
  scc_tmr_reg #(.W(16), .TMR_EN(TMR_EN)) u_scrub_period (.clk_i(clk_i), .rst_ni(rst_ni),
    .we_i(cfg_we && addr_i == A_SCRUB_PERIOD), .d_i(wdata_i[15:0]), .q_o(scrub_period_o),
    .mismatch_o(mismatch[9]));

  assign bias_en_o = epilogue[0];
  assign relu_o    = epilogue[1];
  assign out32_o   = epilogue[2];
  assign shift_o   = epilogue[7:3];

  // ---- Commands ---------------------------------------------------------
  wire ctrl_we   = wr && addr_i == A_CTRL;
  wire status_we = wr && addr_i == A_STATUS;

  assign start_o          = ctrl_we && wdata_i[0] && !busy_i;
  assign soft_reset_o     = ctrl_we && wdata_i[1];
  assign clear_counters_o = ctrl_we && wdata_i[2];
  assign clr_done_o       = status_we && wdata_i[1];
  assign clr_error_o      = status_we && wdata_i[2];

  // ---- Counters ---------------------------------------------------------
  reg [31:0] cycles_q;
  reg [31:0] macs_q;
  reg [31:0] corr_q;
  reg [31:0] uncorr_q;
  reg [31:0] mismatch_q;

  wire any_mismatch = seq_mismatch_i || (|mismatch);

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      cycles_q   <= 32'd0;
      macs_q     <= 32'd0;
      corr_q     <= 32'd0;
      uncorr_q   <= 32'd0;
      mismatch_q <= 32'd0;
    end else begin
      if (job_start_i) begin
        cycles_q <= 32'd0;
        macs_q   <= 32'd0;
      end else begin
        if (cycle_i)   cycles_q <= cycles_q + 32'd1;
        if (macs_en_i) macs_q   <= macs_q + macs_add_i;
      end
      if (clear_counters_o) begin
        corr_q     <= 32'd0;
        uncorr_q   <= 32'd0;
        mismatch_q <= 32'd0;
      end else begin
        corr_q     <= corr_q + {30'd0, corr_inc_i};
        uncorr_q   <= uncorr_q + {30'd0, uncorr_inc_i};
        mismatch_q <= mismatch_q + {31'd0, any_mismatch};
      end
    end
  end

  // ---- Read mux and refusals --------------------------------------------
  always @* begin
    rdata_o = 32'd0;
    err_o   = 1'b0;
    case (addr_i)
      A_ID:           begin rdata_o = ID;                      err_o = we_i; end
      A_PARAMS:       begin rdata_o = PARAMS;                  err_o = we_i; end
      A_SPM_WORDS:    begin rdata_o = WORDS;                   err_o = we_i; end
      A_CTRL:         rdata_o = 32'd0;
      A_STATUS:       rdata_o = {24'd0, err_code_i, 1'b0, error_i, done_i, busy_i};
      A_IRQ_EN:       rdata_o = {31'd0, irq_en_o};
      A_DIM_M:        rdata_o = {20'd0, m_o};
      A_DIM_K:        rdata_o = {20'd0, k_o};
      A_DIM_N:        rdata_o = {20'd0, n_o};
      A_A_ADDR:       rdata_o = {16'd0, a_addr_o};
      A_B_ADDR:       rdata_o = {16'd0, b_addr_o};
      A_BIAS_ADDR:    rdata_o = {16'd0, bias_addr_o};
      A_C_ADDR:       rdata_o = {16'd0, c_addr_o};
      A_EPILOGUE:     rdata_o = {19'd0, shift_o, 5'd0, out32_o, relu_o, bias_en_o};
      A_SCRUB_PERIOD: rdata_o = {16'd0, scrub_period_o};
      A_CYCLES:       begin rdata_o = cycles_q;                err_o = we_i; end
      A_MACS:         begin rdata_o = macs_q;                  err_o = we_i; end
      A_ECC_CORR:     begin rdata_o = corr_q;                  err_o = we_i; end
      A_ECC_UNCORR:   begin rdata_o = uncorr_q;                err_o = we_i; end
      A_TMR_MISMATCH: begin rdata_o = mismatch_q;              err_o = we_i; end
      A_SCRUB_PTR:    begin rdata_o = {16'd0, scrub_ptr_i};    err_o = we_i; end
      A_SCRUB_PASSES: begin rdata_o = scrub_passes_i;          err_o = we_i; end
      default:        err_o = 1'b1;
    endcase
    if (we_i && is_cfg && busy_i) err_o = 1'b1;
    if (!req_i) begin
      rdata_o = 32'd0;
      err_o   = 1'b0;
    end
  end

endmodule

`default_nettype wire
