// scc_seq: the job sequencer: descriptor check, tiling, operand streaming,
// epilogue and write-back (docs/REGISTERS.md, "Job schedule").
//
// Per tile (r, c) of C: BIAS (5 cycles, with BIAS_EN), STREAM (K + 2N - 1
// cycles: A word (r, t) from bank 0 and B word (c, t) from bank 1 for t < K,
// then the array drains), WRITE (one word per cycle). An uncorrectable word
// read in BIAS or STREAM ends the job after that tile's STREAM, unwritten.
// Protection: state, tile counters, step counter, error flag and status are
// TMR registers (u_state, u_rb, u_cb, u_t, u_ecc, u_status); the bias
// register is not protected. Fault sites: those copies and bias_q.

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
  // Memory channel 0 (any bank, read or write) and channel 1 (read).
  output reg               m0_en_o,
  output reg               m0_we_o,
  output reg  [15:0]       m0_addr_o,
  output reg  [DW-1:0]     m0_wdata_o,
  output reg               m1_en_o,
  output reg  [15:0]       m1_addr_o,
  input  wire              r0_valid_i,
  input  wire [DW-1:0]     r0_data_i,
  input  wire              r0_double_i,
  input  wire              r1_valid_i,
  input  wire              r1_double_i,
  // Array control and results.
  output wire              arr_clear_o,
  output wire              arr_valid_o,
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
  localparam [2:0] S_WRITE  = 3'd4;
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

  wire [31:0] c_words = m32 * nb * (out32_i ? 32'd4 : 32'd1);
  wire desc_ok = (m_i != 12'd0) && (k_i != 12'd0) && (n_i != 12'd0)
              && ({16'd0, a_addr_i} + mb * k32 <= BANK)
              && ({16'd0, b_addr_i} >= BANK)
              && ({16'd0, b_addr_i} + nb * k32 <= SPM)
              && (!bias_en_i || ({16'd0, bias_addr_i} + 32'd4 * nb <= SPM))
              && ({16'd0, c_addr_i} + c_words <= SPM);

  // Valid rows and columns of the current tile.
  wire [31:0] rows_left = m32 - (rb32 << LOGN);
  wire [31:0] cols_left = n32 - (cb32 << LOGN);
  wire [31:0] rows_v    = (rows_left < N) ? rows_left : N;
  wire [31:0] cols_v    = (cols_left < N) ? cols_left : N;

  wire [31:0] stream_last = k32 + 2 * N - 2;
  wire [31:0] write_last  = (out32_i ? rows_v << 2 : rows_v) - 1;
  wire        last_tile   = (rb32 + 1 == mb) && (cb32 + 1 == nb);
  wire        read_double = (r0_valid_i & r0_double_i) | (r1_valid_i & r1_double_i);

  // ---- Epilogue ---------------------------------------------------------
  reg [32*N-1:0] bias_q;  // N int32, word q of the bias block at bits [q*DW +: DW]

  wire [31:0] wrow = out32_i ? (t32 >> 2) : t32;
  wire [1:0]  wq   = out32_i ? t[1:0] : 2'd0;
  wire [32*N-1:0] x_row;
  wire [8*N-1:0]  q_row;

  genvar j;
  generate
    for (j = 0; j < N; j = j + 1) begin : g_epi
      wire [31:0] acc  = arr_row_i[32*j +: 32];
      wire        live = (j < cols_v);
      wire [31:0] x;
      wire [7:0]  q;
      scc_epilogue u_epi (
        .acc_i     (acc),
        .bias_i    (bias_q[32*j +: 32]),
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

  // Word offsets of the current access from its operand's base address. The
  // descriptor rules keep them below SPM_WORDS, so only the low 16 bits count.
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] c_index = (((rb32 << LOGN) + wrow) * nb + cb32);
  wire [31:0] c_off   = out32_i ? (c_index << 2) + {30'd0, wq} : c_index;
  wire [31:0] a_off   = rb32 * k32 + t32;
  wire [31:0] b_off   = cb32 * k32 + t32;
  wire [31:0] bias_off = (cb32 << 2) + t32;
  /* verilator lint_on UNUSEDSIGNAL */

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      bias_q <= {32*N{1'b0}};
    end else if (state == S_BIAS && r0_valid_i) begin
      bias_q[(t32 - 1) * DW +: DW] <= r0_data_i;
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
        if (t32 == stream_last) begin
          t_d = 13'd0;
          if (ecc_d) begin
            status_d[5:2] = ERR_ECC;
            state_d       = S_DONE;
          end else begin
            state_d = S_WRITE;
          end
        end
      end
      S_WRITE: begin
        t_d = t + 13'd1;
        if (t32 == write_last) begin
          t_d = 13'd0;
          if (last_tile) begin
            state_d = S_DONE;
          end else begin
            if (cb32 + 1 == nb) begin
              cb_d = 12'd0;
              rb_d = rb + 12'd1;
            end else begin
              cb_d = cb + 12'd1;
            end
            state_d = bias_en_i ? S_BIAS : S_STREAM;
          end
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
    m0_we_o    = 1'b0;
    m0_addr_o  = 16'd0;
    m0_wdata_o = {DW{1'b0}};
    m1_en_o    = 1'b0;
    m1_addr_o  = 16'd0;
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
      S_WRITE: begin
        m0_en_o    = 1'b1;
        m0_we_o    = 1'b1;
        m0_addr_o  = c_addr_i + c_off[15:0];
        m0_wdata_o = out32_i ? x_row[wq * DW +: DW] : q_row;
      end
      default: ;
    endcase
  end

  assign arr_clear_o = (state == S_STREAM) && (t == 13'd0);
  assign arr_valid_o = (state == S_STREAM) && r0_valid_i;
  assign arr_row_o   = wrow[LOGN-1:0];

  assign busy_o     = (state != S_IDLE);
  assign done_o     = status[0];
  assign error_o    = status[1];
  assign err_code_o = status[5:2];

  assign job_start_o = (state == S_IDLE) && start_i;
  assign cycle_o     = (state != S_IDLE);
  assign macs_en_o   = (state == S_STREAM) && (t32 == stream_last) && !ecc_d;
  assign macs_add_o  = rows_v * cols_v * k32;

endmodule

`default_nettype wire
