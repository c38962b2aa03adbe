// scc_secded_pair: simulation wrapper with an encoder and a decoder side by
// side, so one build tests both for a data width.

`default_nettype none

module scc_secded_pair #(
  // Data bits per word.
  parameter integer DW = 32,
  // Check bits (derived).
  parameter integer P = (DW == 16) ? 6 : (DW == 32) ? 7 : (DW == 64) ? 8 : 9
) (
  input  wire [DW-1:0]   enc_data_i,
  output wire [DW+P-1:0] enc_code_o,
  input  wire [DW+P-1:0] dec_code_i,
  output wire [DW-1:0]   dec_data_o,
  output wire [P-1:0]    dec_syndrome_o,
  output wire            dec_single_o,
  output wire            dec_double_o
);

  scc_secded_enc #(.DW(DW)) u_enc (.data_i(enc_data_i), .code_o(enc_code_o));

  scc_secded_dec #(.DW(DW)) u_dec (
    .code_i     (dec_code_i),
    .data_o     (dec_data_o),
    .syndrome_o (dec_syndrome_o),
    .single_o   (dec_single_o),
    .double_o   (dec_double_o)
  );

endmodule

`default_nettype wire
