// scc_spm: the scratchpad: two ECC banks and the arbitration of their ports.
//
// Each bank has a read and a write port. Clients, in priority order: the
// scrubber while a step is in progress, the sequencer while a job runs (read
// channels 0 and 1 and a write channel, each to either bank), and the bus
// otherwise. The bus view splits each word into S = ceil(DW/32) parts
// of 32 bits: writes stage parts 0..S-2 and commit with part S-1; a read of
// part 0 reads the word and latches the others (docs/REGISTERS.md).
// Bus latency: writes 1 cycle, reads of part 0 two cycles.
// Every decoded read is counted (corr_inc_o, uncorr_inc_o: 0, 1 or 2 a cycle).
// Fault sites: the banks' cells (u_bank0, u_bank1), the bus staging and
// latch registers.

`default_nettype none

module scc_spm #(
  // Array size; a word holds N bytes.
  parameter integer N = 4,
  // Words per bank.
  parameter integer BANK_WORDS = 1024,
  // Words interleaved per physical row.
  parameter integer INTERLEAVE = 1,
  // SECDED on every word.
  parameter integer ECC_EN = 1,
  // Data bits per word (derived).
  parameter integer DW = 8 * N
) (
  input  wire          clk_i,
  input  wire          rst_ni,
  input  wire          busy_i,
  // Sequencer.
  input  wire          m0_en_i,
  input  wire [15:0]   m0_addr_i,
  input  wire          m1_en_i,
  input  wire [15:0]   m1_addr_i,
  input  wire          mw_en_i,
  input  wire [15:0]   mw_addr_i,
  input  wire [DW-1:0] mw_wdata_i,
  output wire          r0_valid_o,
  output wire [DW-1:0] r0_data_o,
  output wire          r0_double_o,
  output wire          r1_valid_o,
  output wire          r1_double_o,
  output wire [DW-1:0] bank0_data_o,
  output wire [DW-1:0] bank1_data_o,
  // Bus (word index and 32-bit part within the word).
  input  wire          bus_req_i,
  input  wire          bus_we_i,
  input  wire [16:0]   bus_word_i,
  input  wire [1:0]    bus_part_i,
  input  wire [31:0]   bus_wdata_i,
  output reg           bus_ack_o,
  output reg  [31:0]   bus_rdata_o,
  output reg           bus_err_o,
  // Scrubber.
  input  wire          scrub_active_i,
  input  wire          scrub_read_i,
  input  wire          scrub_write_i,
  input  wire [15:0]   scrub_addr_i,
  output wire          scrub_single_o,
  // ECC events.
  output wire [1:0]    corr_inc_o,
  output wire [1:0]    uncorr_inc_o
);

  localparam integer AW    = $clog2(BANK_WORDS);
  localparam integer S     = (DW + 31) / 32;
  localparam integer SPAD  = 32 * S;
  localparam integer WORDS = 2 * BANK_WORDS;
  // Staged bits: parts 0..S-2 (one unused bit when S = 1).
  localparam integer STW   = (S > 1) ? 32 * (S - 1) : 1;

  // ---- Bus adapter ------------------------------------------------------
  reg  [STW-1:0]  stage_q;   // parts 0..S-2 of the word being written
  reg  [SPAD-1:0] latch_q;   // the word last read through part 0
  reg             rd_pend_q;
  reg             rd_bank_q;

  wire        bus_bank   = bus_word_i[AW];
  wire        bus_range  = ({15'd0, bus_word_i} < WORDS);
  wire        bus_commit = bus_we_i && ({30'd0, bus_part_i} == S - 1);
  wire        bus_read   = !bus_we_i && (bus_part_i == 2'd0);
  // The bus may use a bank this cycle: no job, no scrub step, a valid word.
  wire        bus_go     = bus_req_i && !busy_i && !scrub_active_i && bus_range && !rd_pend_q;

  // Bits above DW of a committed word are dropped (DW = 16 uses half a part).
  /* verilator lint_off UNUSEDSIGNAL */
  wire [SPAD-1:0] commit_word;
  /* verilator lint_on UNUSEDSIGNAL */
  wire [SPAD-1:0] bus_padded;
  generate
    if (S > 1) begin : g_wide
      assign commit_word = {bus_wdata_i, stage_q};
      always @(posedge clk_i or negedge rst_ni) begin
        if (!rst_ni) begin
          stage_q <= {STW{1'b0}};
        end else if (bus_go && bus_we_i && !bus_commit) begin
          stage_q[32 * bus_part_i +: 32] <= bus_wdata_i;
        end
      end
    end else begin : g_narrow
      assign commit_word = bus_wdata_i;
      // With one part per word nothing is staged.
      always @(posedge clk_i) stage_q <= 1'b0;
      /* verilator lint_off UNUSEDSIGNAL */
      wire unused_stage = stage_q[0];
      /* verilator lint_on UNUSEDSIGNAL */
    end
  endgenerate

  // ---- Banks ------------------------------------------------------------
  wire          re    [0:1];
  wire [AW-1:0] raddr [0:1];
  wire          we    [0:1];
  wire [AW-1:0] waddr [0:1];
  wire [DW-1:0] wdata [0:1];
  wire          rvalid[0:1];
  wire [DW-1:0] rdata [0:1];
  wire          single[0:1];
  wire          dbl   [0:1];

  wire m0_bank    = m0_addr_i[AW];
  wire m1_bank    = m1_addr_i[AW];
  wire mw_bank    = mw_addr_i[AW];
  wire scrub_bank = scrub_addr_i[AW];

  genvar b;
  generate
    for (b = 0; b < 2; b = b + 1) begin : g_port
      wire pick_scrub = scrub_active_i && (scrub_bank == b);
      wire pick_m0    = busy_i && m0_en_i && (m0_bank == b);
      wire pick_m1    = busy_i && m1_en_i && (m1_bank == b);
      wire pick_bus   = bus_go && (bus_bank == b);
      assign re[b] = scrub_active_i ? pick_scrub && scrub_read_i
                   : busy_i         ? pick_m0 || pick_m1
                   :                  pick_bus && bus_read;
      assign raddr[b] = scrub_active_i ? scrub_addr_i[AW-1:0]
                      : pick_m0        ? m0_addr_i[AW-1:0]
                      : busy_i         ? m1_addr_i[AW-1:0]
                      :                  bus_word_i[AW-1:0];
      assign we[b] = scrub_active_i ? pick_scrub && scrub_write_i
                   : busy_i         ? mw_en_i && (mw_bank == b)
                   :                  pick_bus && bus_commit;
      assign waddr[b] = scrub_active_i ? scrub_addr_i[AW-1:0]
                      : busy_i         ? mw_addr_i[AW-1:0]
                      :                  bus_word_i[AW-1:0];
      // The scrubber writes back the corrected word its read returned.
      assign wdata[b] = scrub_active_i ? rdata[b]
                      : busy_i         ? mw_wdata_i
                      :                  commit_word[DW-1:0];
    end
  endgenerate

  scc_spm_bank #(.DW(DW), .BANK_WORDS(BANK_WORDS), .INTERLEAVE(INTERLEAVE), .ECC_EN(ECC_EN))
  u_bank0 (
    .clk_i (clk_i), .re_i (re[0]), .raddr_i (raddr[0]),
    .we_i (we[0]), .waddr_i (waddr[0]), .wdata_i (wdata[0]),
    .rvalid_o (rvalid[0]), .rdata_o (rdata[0]), .single_o (single[0]), .double_o (dbl[0])
  );

  scc_spm_bank #(.DW(DW), .BANK_WORDS(BANK_WORDS), .INTERLEAVE(INTERLEAVE), .ECC_EN(ECC_EN))
  u_bank1 (
    .clk_i (clk_i), .re_i (re[1]), .raddr_i (raddr[1]),
    .we_i (we[1]), .waddr_i (waddr[1]), .wdata_i (wdata[1]),
    .rvalid_o (rvalid[1]), .rdata_o (rdata[1]), .single_o (single[1]), .double_o (dbl[1])
  );

  // ---- Read routing -----------------------------------------------------
  // Which bank each sequencer channel and the scrubber read last cycle.
  reg r0_bank_q;
  reg r1_bank_q;
  reg scrub_bank_q;
  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      r0_bank_q    <= 1'b0;
      r1_bank_q    <= 1'b1;
      scrub_bank_q <= 1'b0;
    end else begin
      r0_bank_q    <= m0_bank;
      r1_bank_q    <= m1_bank;
      scrub_bank_q <= scrub_bank;
    end
  end

  assign r0_valid_o     = busy_i && rvalid[r0_bank_q];
  assign r0_data_o      = rdata[r0_bank_q];
  assign r0_double_o    = dbl[r0_bank_q];
  assign r1_valid_o     = busy_i && rvalid[r1_bank_q];
  assign r1_double_o    = dbl[r1_bank_q];
  assign bank0_data_o   = rdata[0];
  assign bank1_data_o   = rdata[1];
  assign scrub_single_o = single[scrub_bank_q];

  assign corr_inc_o   = {1'b0, rvalid[0] & single[0]} + {1'b0, rvalid[1] & single[1]};
  assign uncorr_inc_o = {1'b0, rvalid[0] & dbl[0]} + {1'b0, rvalid[1] & dbl[1]};

  // ---- Bus responses ----------------------------------------------------
  generate
    if (SPAD > DW) begin : g_pad
      assign bus_padded = {{(SPAD-DW){1'b0}}, rdata[rd_bank_q]};
    end else begin : g_nopad
      assign bus_padded = rdata[rd_bank_q];
    end
  endgenerate

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      latch_q   <= {SPAD{1'b0}};
      rd_pend_q <= 1'b0;
      rd_bank_q <= 1'b0;
    end else begin
      rd_pend_q <= 1'b0;
      if (rd_pend_q) begin
        latch_q <= bus_padded;
      end
      if (bus_go && bus_read) begin
        rd_pend_q <= 1'b1;
        rd_bank_q <= bus_bank;
      end
    end
  end

  always @* begin
    bus_ack_o   = 1'b0;
    bus_rdata_o = 32'd0;
    bus_err_o   = 1'b0;
    if (bus_req_i) begin
      if (busy_i || !bus_range) begin
        bus_ack_o = 1'b1;
        bus_err_o = 1'b1;
      end else if (rd_pend_q) begin
        bus_ack_o   = 1'b1;
        bus_rdata_o = bus_padded[31:0];
        bus_err_o   = dbl[rd_bank_q];
      end else if (bus_go && bus_we_i) begin
        bus_ack_o = 1'b1;
      end else if (bus_go && !bus_read) begin
        bus_ack_o   = 1'b1;
        bus_rdata_o = latch_q[32 * bus_part_i +: 32];
      end
    end
  end

endmodule

`default_nettype wire
