// scc_pe: one processing element of the output-stationary systolic array.
//
// Multiplies the int8 operands arriving from the left (a) and from above (b)
// and adds the int16 product into a wrapping int32 accumulator when valid_i.
// A beat tagged first_i starts a new tile: the accumulator moves to the result
// register out_q and restarts from the beat's product (0 without valid_i).
// Operands and tags pass on to the right (b downward) one cycle later.
// Throughput one MAC per cycle.
// Protection: none. Fault sites: acc_q and out_q (32 bits each).

`default_nettype none

module scc_pe (
  input  wire              clk_i,
  input  wire              rst_ni,
  input  wire signed [7:0] a_i,
  input  wire              valid_i,
  input  wire              first_i,
  input  wire signed [7:0] b_i,
  output wire signed [7:0] a_o,
  output wire              valid_o,
  output wire              first_o,
  output wire signed [7:0] b_o,
  output wire       [31:0] out_o
);

  reg signed [7:0] a_q;
  reg              valid_q;
  reg              first_q;
  reg signed [7:0] b_q;
  reg       [31:0] acc_q;
  reg       [31:0] out_q;

  wire signed [15:0] product = a_i * b_i;
  wire        [31:0] term    = valid_i ? {{16{product[15]}}, product} : 32'd0;

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      a_q     <= 8'sd0;
      valid_q <= 1'b0;
      first_q <= 1'b0;
      b_q     <= 8'sd0;
      acc_q   <= 32'd0;
      out_q   <= 32'd0;
    end else begin
      a_q     <= a_i;
      valid_q <= valid_i;
      first_q <= first_i;
      b_q     <= b_i;
      if (first_i) begin
        out_q <= acc_q;
        acc_q <= term;
      end else if (valid_i) begin
        acc_q <= acc_q + term;
      end
    end
  end

  assign a_o     = a_q;
  assign valid_o = valid_q;
  assign first_o = first_q;
  assign b_o     = b_q;
  assign out_o   = out_q;

endmodule

`default_nettype wire
