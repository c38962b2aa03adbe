// scc_seq: the job sequencer: descriptor check, tiling, operand streaming,
// epilogue and write-back (docs/REGISTERS.md, "Job schedule").
//
// Column blocks outer, row blocks inner. BIAS (5 cycles, with BIAS_EN) loads a
// column block's bias into one of two buffers; each tile then has a STREAM
// period of P = max(K + 1, (w + 1) N + 1) cycles: A word (r, t) from bank 0 and
// B word (c, t) from bank 1 for t < K, the first beat tagged FIRST, while the
// previous tile's results are written from cycle N + 1 on. FLUSH writes the
// last tile's. An uncorrectable word read for a tile ends the job after that
// tile's period, unwritten. Throughput: N*N MACs a cycle while streaming.
// Protection: state, tile counters, step counter, error flag and status are
// TMR registers (u_state, u_rb, u_cb, u_t, u_ecc, u_status); the bias buffers
// are not protected. Fault sites: those copies and bias0_q, bias1_q.

`default_nettype none

module scc_seq #(
  // Array size.
  parameter integer N = 4,
  // Words per scratchpad bank.
  parameter integer BANK_WORDS = 1024,
  // 1: control state in three voted copies.
  parameter integer TMR_EN = 1,
  // Data bits per scratchpad word (derived).
  parameter integer DW = 8 * N,
  // log2(N) (derived).
  parameter integer LOGN = $clog2(N)
) (
  input  wire              clk_i,
  input  wire              rst_ni,
  input  wire              start_i,
  input  wire              clr_done_i,
  input  wire              clr_error_i,
  // Job descriptor (voted configuration registers).
  input  wire [11:0]       m_i,
  input  wire [11:0]       k_i,
  input  wire [11:0]       n_i,
  input  wire [15:0]       a_addr_i,
  input  wire [15:0]       b_addr_i,
  input  wire [15:0]       bias_addr_i,
  input  wire [15:0]       c_addr_i,
  input  wire              bias_en_i,
  input  wire              relu_i,
  input  wire              out32_i,
  input  wire [4:0]        shift_i,
  // Status.
  output wire              busy_o,
  output wire              done_o,
  output wire              error_o,
  output wire [3:0]        err_code_o,
  // Memory: read channels 0 (A, bias) and 1 (B), and the write channel.
  output reg               m0_en_o,
  output reg  [15:0]       m0_addr_o,
  output reg               m1_en_o,
  output reg  [15:0]       m1_addr_o,
  output reg               mw_en_o,
  output reg  [15:0]       mw_addr_o,
  output reg  [DW-1:0]     mw_wdata_o,
  input  wire              r0_valid_i,
  input  wire [DW-1:0]     r0_data_i,
  input  wire              r0_double_i,
  input  wire              r1_valid_i,
  input  wire              r1_double_i,
  // Array control and results.
  output wire              arr_valid_o,
  output wire              arr_first_o,
  output wire [LOGN-1:0]   arr_row_o,
  input  wire [32*N-1:0]   arr_row_i,
  // Counter updates.
  output wire              job_start_o,
  output wire              cycle_o,
  output wire              macs_en_o,
  output wire [31:0]       macs_add_o,
  output wire              mismatch_o
);

  localparam [31:0] BANK  = BANK_WORDS;
  localparam [31:0] SPM   = 2 * BANK_WORDS;

  localparam [2:0] S_IDLE   = 3'd0;
  localparam [2:0] S_CHECK  = 3'd1;
  localparam [2:0] S_BIAS   = 3'd2;
  localparam [2:0] S_STREAM = 3'd3;
  localparam [2:0] S_FLUSH  = 3'd4;
  localparam [2:0] S_DONE   = 3'd5;

  localparam [3:0] ERR_NONE = 4'd0;
  localparam [3:0] ERR_ECC  = 4'd1;
  localparam [3:0] ERR_DESC = 4'd2;

  initial begin
    if (N < 2 || N > 16 || (1 << LOGN) != N) begin
      $error("%m: N must be a power of two from 2 to 16, got %0d", N);
      $finish;
    end
  end

  // ---- TMR control state ------------------------------------------------
  wire [2:0]  state;
  wire [11:0] rb;
  wire [11:0] cb;
  wire [12:0] t;
  wire        ecc;
  wire [5:0]  status;  // {err_code[3:0], error, done}
  reg  [2:0]  state_d;
  reg  [11:0] rb_d;
  reg  [11:0] cb_d;
  reg  [12:0] t_d;
  reg         ecc_d;
  reg  [5:0]  status_d;
  wire [5:0]  mismatch;

  scc_tmr_reg #(.W(3),  .TMR_EN(TMR_EN)) u_state  (.clk_i(clk_i), .rst_ni(rst_ni), .we_i(1'b1),
    .d_i(state_d),  .q_o(state),  .mismatch_o(mismatch[0]));
  scc_tmr_reg #(.W(12), .TMR_EN(TMR_EN)) u_rb     (.clk_i(clk_i), .rst_ni(rst_ni), .we_i(1'b1),
    .d_i(rb_d),     .q_o(rb),     .mismatch_o(mismatch[1]));
  scc_tmr_reg #(.W(12), .TMR_EN(TMR_EN)) u_cb     (.clk_i(clk_i), .rst_ni(rst_ni), .we_i(1'b1),
    .d_i(cb_d),     .q_o(cb),     .mismatch_o(mismatch[2]));
  scc_tmr_reg #(.W(13), .TMR_EN(TMR_EN)) u_t      (.clk_i(clk_i), .rst_ni(rst_ni), .we_i(1'b1),
    .d_i(t_d),      .q_o(t),      .mismatch_o(mismatch[3]));
  scc_tmr_reg #(.W(1),  .TMR_EN(TMR_EN)) u_ecc    (.clk_i(clk_i), .rst_ni(rst_ni), .we_i(1'b1),
    .d_i(ecc_d),    .q_o(ecc),    .mismatch_o(mismatch[4]));
  scc_tmr_reg #(.W(6),  .TMR_EN(TMR_EN)) u_status (.clk_i(clk_i), .rst_ni(rst_ni), .we_i(1'b1),
    .d_i(status_d), .q_o(status), .mismatch_o(mismatch[5]));

  assign mismatch_o = |mismatch;

  // ---- Job geometry -----------------------------------------------------
  wire [31:0] m32  = {20'd0, m_i};
  wire [31:0] k32  = {20'd0, k_i};
  wire [31:0] n32  = {20'd0, n_i};
  wire [31:0] mb   = (m32 + N - 1) >> LOGN;
  wire [31:0] nb   = (n32 + N - 1) >> LOGN;
  wire [31:0] rb32 = {20'd0, rb};
  wire [31:0] cb32 = {20'd0, cb};
  wire [31:0] t32  = {19'd0, t};
  wire [31:0] w32  = out32_i ? 32'd4 : 32'd1;

  // Regions as [lo, hi) word ranges, for the descriptor rules.
  wire [31:0] a_lo    = {16'd0, a_addr_i};
  wire [31:0] a_hi    = a_lo + mb * k32;
  wire [31:0] b_lo    = {16'd0, b_addr_i};
  wire [31:0] b_hi    = b_lo + nb * k32;
  wire [31:0] bias_lo = {16'd0, bias_addr_i};
  wire [31:0] bias_hi = bias_lo + 32'd4 * nb;
  wire [31:0] c_lo    = {16'd0, c_addr_i};
  wire [31:0] c_hi    = c_lo + m32 * nb * w32;
  wire desc_ok = (m_i != 12'd0) && (k_i != 12'd0) && (n_i != 12'd0)
              && (a_hi <= BANK) && (b_lo >= BANK) && (b_hi <= SPM)
              && (!bias_en_i || bias_hi <= SPM)
              && (c_hi <= SPM)
              && !(c_lo < a_hi && a_lo < c_hi)
              && !(c_lo < b_hi && b_lo < c_hi)
              && !(bias_en_i && c_lo < bias_hi && bias_lo < c_hi);

  // Tile period and the tile whose results are written in it: in STREAM the
  // previous tile (column blocks outer), in FLUSH the last one (rb, cb).
  wire [31:0] p_min    = (w32 + 1) * N + 1;
  wire [31:0] period   = (k32 + 1 > p_min) ? k32 + 1 : p_min;
  wire        last_row = (rb32 + 1 == mb);
  wire        last_col = (cb32 + 1 == nb);
  wire        first_tile = (rb == 12'd0) && (cb == 12'd0);
  wire [31:0] wr_rb    = (state == S_FLUSH) ? rb32 : (rb == 12'd0) ? mb - 1 : rb32 - 1;
  wire [31:0] wr_cb    = (state == S_FLUSH || rb != 12'd0) ? cb32 : cb32 - 1;
  wire        wr_tile  = (state == S_FLUSH) || (state == S_STREAM && !first_tile);

  function automatic [31:0] min_n(input [31:0] left);
    min_n = (left < N) ? left : N;
  endfunction

  wire [31:0] rows_v    = min_n(m32 - (rb32 << LOGN));
  wire [31:0] cols_v    = min_n(n32 - (cb32 << LOGN));
  wire [31:0] wr_rows   = min_n(m32 - (wr_rb << LOGN));
  wire [31:0] wr_cols   = min_n(n32 - (wr_cb << LOGN));
  wire [31:0] u         = t32 - (N + 1);
  wire        writing   = wr_tile && (t32 >= N + 1) && (u < w32 * wr_rows);
  wire [31:0] flush_len = N + 1 + w32 * rows_v;
  wire        read_double = (r0_valid_i & r0_double_i) | (r1_valid_i & r1_double_i);

  // ---- Epilogue ---------------------------------------------------------
  // Two bias buffers, by column block parity: N int32, word q of the block's
  // bias at bits [q*DW +: DW].
  reg [32*N-1:0] bias0_q;
  reg [32*N-1:0] bias1_q;
  wire [32*N-1:0] wr_bias = wr_cb[0] ? bias1_q : bias0_q;

  wire [31:0] wrow = out32_i ? (u >> 2) : u;
  wire [1:0]  wq   = out32_i ? u[1:0] : 2'd0;
  wire [32*N-1:0] x_row;
  wire [8*N-1:0]  q_row;

  genvar j;
  generate
    for (j = 0; j < N; j = j + 1) begin : g_epi
      wire [31:0] acc  = arr_row_i[32*j +: 32];
      wire        live = (j < wr_cols);
      wire [31:0] x;
      wire [7:0]  q;
      scc_epilogue u_epi (
        .acc_i     (acc),
        .bias_i    (wr_bias[32*j +: 32]),
        .bias_en_i (bias_en_i),
        .relu_i    (relu_i),
        .shift_i   (shift_i),
        .x_o       (x),
        .q_o       (q)
      );
      assign x_row[32*j +: 32] = live ? x : 32'd0;
      assign q_row[8*j +: 8]   = live ? q : 8'd0;
    end
  endgenerate

  // Word offsets of the current accesses from their operands' base addresses.
  // The descriptor rules keep them below SPM_WORDS, so only the low 16 bits count.
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] c_index  = (((wr_rb << LOGN) + wrow) * nb + wr_cb);
  wire [31:0] c_off    = out32_i ? (c_index << 2) + {30'd0, wq} : c_index;
  wire [31:0] a_off    = rb32 * k32 + t32;
  wire [31:0] b_off    = cb32 * k32 + t32;
  wire [31:0] bias_off = (cb32 << 2) + t32;
  /* verilator lint_on UNUSEDSIGNAL */

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      bias0_q <= {32*N{1'b0}};
      bias1_q <= {32*N{1'b0}};
    end else if (state == S_BIAS && r0_valid_i) begin
      if (cb[0]) bias1_q[(t32 - 1) * DW +: DW] <= r0_data_i;
      else       bias0_q[(t32 - 1) * DW +: DW] <= r0_data_i;
    end
  end

  // The beat of step t reaches the array edge one cycle after its read.
  reg valid_q;
  reg first_q;
  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= 1'b0;
      first_q <= 1'b0;
    end else begin
      valid_q <= (state == S_STREAM) && (t32 < k32);
      first_q <= (state == S_STREAM || state == S_FLUSH) && (t == 13'd0);
    end
  end

  // ---- Next state -------------------------------------------------------
  always @* begin
    state_d  = state;
    rb_d     = rb;
    cb_d     = cb;
    t_d      = t;
    ecc_d    = ecc;
    status_d = status;
    if (clr_done_i)  status_d[0] = 1'b0;
    if (clr_error_i) status_d[1] = 1'b0;
    if ((state == S_BIAS || state == S_STREAM) && read_double) ecc_d = 1'b1;
    case (state)
      S_IDLE: begin
        if (start_i) begin
          state_d  = S_CHECK;
          status_d = 6'd0;
        end
      end
      S_CHECK: begin
        rb_d  = 12'd0;
        cb_d  = 12'd0;
        t_d   = 13'd0;
        ecc_d = 1'b0;
        if (!desc_ok) begin
          status_d[5:2] = ERR_DESC;
          state_d       = S_DONE;
        end else begin
          state_d = bias_en_i ? S_BIAS : S_STREAM;
        end
      end
      S_BIAS: begin
        t_d = t + 13'd1;
        if (t == 13'd4) begin
          t_d     = 13'd0;
          state_d = S_STREAM;
        end
      end
      S_STREAM: begin
        t_d = t + 13'd1;
        if (t32 + 1 == period) begin
          t_d = 13'd0;
          if (ecc_d) begin
            status_d[5:2] = ERR_ECC;
            state_d       = S_DONE;
          end else begin
            ecc_d = 1'b0;
            if (!last_row) begin
              rb_d = rb + 12'd1;
            end else if (!last_col) begin
              rb_d    = 12'd0;
              cb_d    = cb + 12'd1;
              state_d = bias_en_i ? S_BIAS : S_STREAM;
            end else begin
              state_d = S_FLUSH;
            end
          end
        end
      end
      S_FLUSH: begin
        t_d = t + 13'd1;
        if (t32 + 1 == flush_len) begin
          t_d     = 13'd0;
          state_d = S_DONE;
        end
      end
      S_DONE: begin
        status_d[0] = 1'b1;
        status_d[1] = (status[5:2] != ERR_NONE);
        state_d     = S_IDLE;
      end
      default: state_d = S_IDLE;
    endcase
  end

  // ---- Memory requests --------------------------------------------------
  always @* begin
    m0_en_o    = 1'b0;
    m0_addr_o  = 16'd0;
    m1_en_o    = 1'b0;
    m1_addr_o  = 16'd0;
    mw_en_o    = writing;
    mw_addr_o  = c_addr_i + c_off[15:0];
    mw_wdata_o = out32_i ? x_row[wq * DW +: DW] : q_row;
    case (state)
      S_BIAS: begin
        if (t < 13'd4) begin
          m0_en_o   = 1'b1;
          m0_addr_o = bias_addr_i + bias_off[15:0];
        end
      end
      S_STREAM: begin
        if (t32 < k32) begin
          m0_en_o   = 1'b1;
          m0_addr_o = a_addr_i + a_off[15:0];
          m1_en_o   = 1'b1;
          m1_addr_o = b_addr_i + b_off[15:0];
        end
      end
      default: ;
    endcase
  end

  assign arr_valid_o = valid_q;
  assign arr_first_o = first_q;
  assign arr_row_o   = wrow[LOGN-1:0];

  assign busy_o     = (state != S_IDLE);
  assign done_o     = status[0];
  assign error_o    = status[1];
  assign err_code_o = status[5:2];

  assign job_start_o = (state == S_IDLE) && start_i;
  assign cycle_o     = (state != S_IDLE);
  assign macs_en_o   = (state == S_STREAM) && (t32 + 1 == period) && !ecc_d;
  assign macs_add_o  = rows_v * cols_v * k32;

endmodule

`default_nettype wire
