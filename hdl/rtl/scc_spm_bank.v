// scc_spm_bank: one single-port scratchpad bank with SECDED ECC.
//
// BANK_WORDS words of DW data bits, each stored as a codeword of CW = DW + P
// bits (CW = DW without ECC). Physically BANK_WORDS / INTERLEAVE rows of
// INTERLEAVE * CW cells; cell x of row p holds bit x / INTERLEAVE of word
// p * INTERLEAVE + x % INTERLEAVE (docs/REGISTERS.md, "Physical layout";
// firmware_sim/accel/layout.py holds the same map).
// One read and one write port: a write encodes and stores wdata_i; a read
// returns the decoded word the next cycle with rvalid_o, single_o (corrected)
// and double_o (uncorrectable). A read of a row written in the same cycle sees
// the row as it was before the write.
// Fault sites: every cell of mem_q.

`default_nettype none

module scc_spm_bank #(
  // Data bits per word.
  parameter integer DW = 32,
  // Words in the bank; a power of two.
  parameter integer BANK_WORDS = 1024,
  // Words bit-interleaved in one physical row: 1, 2, 4 or 8.
  parameter integer INTERLEAVE = 1,
  // 1: store SECDED check bits and correct on read.
  parameter integer ECC_EN = 1,
  // Word address bits (derived).
  parameter integer AW = $clog2(BANK_WORDS)
) (
  input  wire          clk_i,
  input  wire          re_i,
  input  wire [AW-1:0] raddr_i,
  input  wire          we_i,
  input  wire [AW-1:0] waddr_i,
  input  wire [DW-1:0] wdata_i,
  output wire          rvalid_o,
  output wire [DW-1:0] rdata_o,
  output wire          single_o,
  output wire          double_o
);

  localparam integer P    = (ECC_EN == 0) ? 0 :
                            (DW == 16) ? 6 : (DW == 32) ? 7 : (DW == 64) ? 8 : 9;
  localparam integer CW   = DW + P;
  localparam integer ROWS = BANK_WORDS / INTERLEAVE;
  localparam integer RW   = INTERLEAVE * CW;
  // Slot bits: log2(INTERLEAVE), and at least one bit for the slot registers.
  localparam integer LI   = (INTERLEAVE == 8) ? 3 : (INTERLEAVE == 4) ? 2 :
                            (INTERLEAVE == 2) ? 1 : 0;
  localparam integer SW   = (LI > 0) ? LI : 1;
  // Row address bits.
  localparam integer RA   = AW - LI;

  initial begin
    if (INTERLEAVE != 1 && INTERLEAVE != 2 && INTERLEAVE != 4 && INTERLEAVE != 8) begin
      $error("%m: INTERLEAVE must be 1, 2, 4 or 8, got %0d", INTERLEAVE);
      $finish;
    end
    if ((1 << AW) != BANK_WORDS) begin
      $error("%m: BANK_WORDS must be a power of two, got %0d", BANK_WORDS);
      $finish;
    end
  end

  reg [RW-1:0] mem_q [0:ROWS-1];

  // Memory powers up as all-zero codewords (valid with the Hsiao code), so
  // that simulation starts from a defined, error-free state.
  integer r;
  initial begin
    for (r = 0; r < ROWS; r = r + 1) mem_q[r] = {RW{1'b0}};
  end

  wire [CW-1:0] wcode;
  generate
    if (ECC_EN != 0) begin : g_enc
      scc_secded_enc #(.DW(DW)) u_enc (.data_i(wdata_i), .code_o(wcode));
    end else begin : g_bare
      assign wcode = wdata_i;
    end
  endgenerate

  // Row and slot of each port's word.
  wire [RA-1:0] wrow;
  wire [SW-1:0] wslot_w;
  wire [RA-1:0] rrow;
  wire [SW-1:0] rslot_w;
  generate
    if (LI > 0) begin : g_split
      assign wrow    = waddr_i[AW-1:LI];
      assign wslot_w = waddr_i[SW-1:0];
      assign rrow    = raddr_i[AW-1:LI];
      assign rslot_w = raddr_i[SW-1:0];
    end else begin : g_whole
      assign wrow    = waddr_i;
      assign wslot_w = 1'b0;
      assign rrow    = raddr_i;
      assign rslot_w = 1'b0;
    end
  endgenerate

  reg [RW-1:0] rrow_q;
  reg [SW-1:0] rslot_q;
  reg          rvalid_q;
  integer bw;
  wire [31:0] wslot = {{(32-SW){1'b0}}, wslot_w};
  // The row is merged at the clock edge from the row as it is then, so only the
  // word's own cells change and its neighbours keep every bit, upsets included.
  // row_merge is a local temporary of this block.
  /* verilator lint_off BLKSEQ */
  reg [RW-1:0] row_merge;
  always @(posedge clk_i) begin
    rvalid_q <= re_i;
    if (re_i) begin
      rrow_q  <= mem_q[rrow];
      rslot_q <= rslot_w;
    end
    if (we_i) begin
      row_merge = mem_q[wrow];
      for (bw = 0; bw < CW; bw = bw + 1) begin
        row_merge[bw * INTERLEAVE + wslot] = wcode[bw];
      end
      mem_q[wrow] <= row_merge;
    end
  end
  /* verilator lint_on BLKSEQ */

  reg [CW-1:0] rcode;
  integer b;
  integer rslot;
  always @* begin
    rslot = {{(32-SW){1'b0}}, rslot_q};
    rcode = {CW{1'b0}};
    for (b = 0; b < CW; b = b + 1) begin
      rcode[b] = rrow_q[b * INTERLEAVE + rslot];
    end
  end

  generate
    if (ECC_EN != 0) begin : g_dec
      // The syndrome is for debug views only.
      /* verilator lint_off UNUSEDSIGNAL */
      wire [P-1:0] syndrome;
      /* verilator lint_on UNUSEDSIGNAL */
      scc_secded_dec #(.DW(DW)) u_dec (
        .code_i     (rcode),
        .data_o     (rdata_o),
        .syndrome_o (syndrome),
        .single_o   (single_o),
        .double_o   (double_o)
      );
    end else begin : g_nodec
      assign rdata_o  = rcode;
      assign single_o = 1'b0;
      assign double_o = 1'b0;
    end
  endgenerate

  assign rvalid_o = rvalid_q;

endmodule

`default_nettype wire
