// scc_epilogue: the NN-layer epilogue for one output element.
//
// x = acc (+ bias, wrapping int32), then ReLU, then requantization by an
// arithmetic right shift that rounds half up, saturated to int8. The shift
// is computed in 33 bits so the rounding term cannot overflow.
// Combinational. Protection: none; no state.

`default_nettype none

module scc_epilogue (
  input  wire [31:0] acc_i,
  input  wire [31:0] bias_i,
  input  wire        bias_en_i,
  input  wire        relu_i,
  input  wire [4:0]  shift_i,
  output wire [31:0] x_o,
  output wire [7:0]  q_o
);

  wire [31:0] biased = bias_en_i ? acc_i + bias_i : acc_i;
  wire [31:0] x      = (relu_i && biased[31]) ? 32'd0 : biased;

  wire signed [32:0] wide    = {x[31], x};
  wire signed [32:0] half    = (shift_i == 5'd0) ? 33'sd0 : (33'sd1 <<< (shift_i - 5'd1));
  wire signed [32:0] rounded = (wide + half) >>> shift_i;

  reg [7:0] q;
  always @* begin
    if (rounded > 33'sd127) begin
      q = 8'h7f;
    end else if (rounded < -33'sd128) begin
      q = 8'h80;
    end else begin
      q = rounded[7:0];
    end
  end

  assign x_o = x;
  assign q_o = q;

endmodule

`default_nettype wire
