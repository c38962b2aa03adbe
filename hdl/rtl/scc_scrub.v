// scc_scrub: background scrubber of the scratchpad.
//
// While no job runs and PERIOD != 0 it waits PERIOD idle cycles, then takes
// one two-cycle step on word ptr: READ (the bank reads the word), then FIX
// (the decoded word is back; a corrected single-bit error is written back).
// The pointer then advances and wraps, counting completed passes.
// A step in progress owns the scratchpad port; the bus waits.
// Protection: none (period comes from a TMR register). Fault sites: ptr_q,
// timer_q.

`default_nettype none

module scc_scrub #(
  // Words in the whole scratchpad (both banks).
  parameter integer SPM_WORDS = 2048
) (
  input  wire        clk_i,
  input  wire        rst_ni,
  input  wire        clear_i,
  input  wire        busy_i,
  input  wire [15:0] period_i,
  // Result of the read issued in READ, valid in FIX.
  input  wire        single_i,
  // Port request.
  output wire        active_o,
  output wire        read_o,
  output wire        write_o,
  output wire [15:0] addr_o,
  output wire [15:0] ptr_o,
  output wire [31:0] passes_o
);

  localparam [1:0] S_WAIT = 2'd0;
  localparam [1:0] S_READ = 2'd1;
  localparam [1:0] S_FIX  = 2'd2;

  reg [1:0]  state_q;
  reg [15:0] timer_q;
  reg [15:0] ptr_q;
  reg [31:0] passes_q;

  wire last_word = ({16'd0, ptr_q} == SPM_WORDS - 1);

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q  <= S_WAIT;
      timer_q  <= 16'd0;
      ptr_q    <= 16'd0;
      passes_q <= 32'd0;
    end else begin
      case (state_q)
        S_WAIT: begin
          if (busy_i || period_i == 16'd0) begin
            timer_q <= 16'd0;
          end else if (timer_q + 16'd1 >= period_i) begin
            timer_q <= 16'd0;
            state_q <= S_READ;
          end else begin
            timer_q <= timer_q + 16'd1;
          end
        end
        S_READ: state_q <= S_FIX;
        S_FIX: begin
          state_q <= S_WAIT;
          ptr_q   <= last_word ? 16'd0 : ptr_q + 16'd1;
          if (last_word) passes_q <= passes_q + 32'd1;
        end
        default: state_q <= S_WAIT;
      endcase
      if (clear_i) begin
        ptr_q    <= 16'd0;
        passes_q <= 32'd0;
      end
    end
  end

  assign active_o = (state_q != S_WAIT);
  assign read_o   = (state_q == S_READ);
  assign write_o  = (state_q == S_FIX) && single_i;
  assign addr_o   = ptr_q;
  assign ptr_o    = ptr_q;
  assign passes_o = passes_q;

endmodule

`default_nettype wire
