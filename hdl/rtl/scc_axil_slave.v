// scc_axil_slave: AXI4-Lite slave that turns each transaction into one
// request on a simple port (req/we/addr/wdata, answered by ack/rdata/err).
//
// One transaction at a time: a write is taken when both AW and W are valid,
// otherwise a read when AR is valid; the request is held until ack_i, then the
// response (OKAY, or SLVERR when err_i) is held until the master takes it.
// A write whose WSTRB is not 4'b1111 makes no request: it is answered SLVERR
// in the next cycle. Latency: two cycles plus the target's (one for a refused
// partial write). The PROT signals are not used.
// Protection: none. Reset by rst_ni only, so a SOFT_RESET write is answered.

`default_nettype none

module scc_axil_slave #(
  // Byte address bits.
  parameter integer AW = 20
) (
  input  wire          clk_i,
  input  wire          rst_ni,
  input  wire [AW-1:0] s_axil_awaddr,
  /* verilator lint_off UNUSEDSIGNAL */
  input  wire [2:0]    s_axil_awprot,
  /* verilator lint_on UNUSEDSIGNAL */
  input  wire          s_axil_awvalid,
  output wire          s_axil_awready,
  input  wire [31:0]   s_axil_wdata,
  input  wire [3:0]    s_axil_wstrb,
  input  wire          s_axil_wvalid,
  output wire          s_axil_wready,
  output wire [1:0]    s_axil_bresp,
  output wire          s_axil_bvalid,
  input  wire          s_axil_bready,
  input  wire [AW-1:0] s_axil_araddr,
  /* verilator lint_off UNUSEDSIGNAL */
  input  wire [2:0]    s_axil_arprot,
  /* verilator lint_on UNUSEDSIGNAL */
  input  wire          s_axil_arvalid,
  output wire          s_axil_arready,
  output wire [31:0]   s_axil_rdata,
  output wire [1:0]    s_axil_rresp,
  output wire          s_axil_rvalid,
  input  wire          s_axil_rready,
  // Request port.
  output wire          req_o,
  output wire          we_o,
  output wire [AW-1:0] addr_o,
  output wire [31:0]   wdata_o,
  input  wire          ack_i,
  input  wire [31:0]   rdata_i,
  input  wire          err_i
);

  localparam [1:0] S_IDLE = 2'd0;
  localparam [1:0] S_REQ  = 2'd1;
  localparam [1:0] S_RESP = 2'd2;

  localparam [1:0] OKAY   = 2'b00;
  localparam [1:0] SLVERR = 2'b10;

  reg [1:0]    state_q;
  reg          we_q;
  reg [AW-1:0] addr_q;
  reg [31:0]   wdata_q;
  reg [31:0]   rdata_q;
  reg          err_q;

  wire take_write = (state_q == S_IDLE) && s_axil_awvalid && s_axil_wvalid;
  // Only whole-word writes reach the target.
  wire full_write = (s_axil_wstrb == 4'b1111);
  wire take_read  = (state_q == S_IDLE) && !take_write && s_axil_arvalid;
  wire resp_done  = (state_q == S_RESP) && (we_q ? s_axil_bready : s_axil_rready);

  always @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= S_IDLE;
      we_q    <= 1'b0;
      addr_q  <= {AW{1'b0}};
      wdata_q <= 32'd0;
      rdata_q <= 32'd0;
      err_q   <= 1'b0;
    end else begin
      case (state_q)
        S_IDLE: begin
          if (take_write && full_write) begin
            state_q <= S_REQ;
            we_q    <= 1'b1;
            addr_q  <= s_axil_awaddr;
            wdata_q <= s_axil_wdata;
          end else if (take_write) begin
            state_q <= S_RESP;
            we_q    <= 1'b1;
            err_q   <= 1'b1;
          end else if (take_read) begin
            state_q <= S_REQ;
            we_q    <= 1'b0;
            addr_q  <= s_axil_araddr;
          end
        end
        S_REQ: begin
          if (ack_i) begin
            state_q <= S_RESP;
            rdata_q <= rdata_i;
            err_q   <= err_i;
          end
        end
        S_RESP: begin
          if (resp_done) state_q <= S_IDLE;
        end
        default: state_q <= S_IDLE;
      endcase
    end
  end

  assign s_axil_awready = take_write;
  assign s_axil_wready  = take_write;
  assign s_axil_arready = take_read;
  assign s_axil_bvalid  = (state_q == S_RESP) && we_q;
  assign s_axil_bresp   = err_q ? SLVERR : OKAY;
  assign s_axil_rvalid  = (state_q == S_RESP) && !we_q;
  assign s_axil_rresp   = err_q ? SLVERR : OKAY;
  assign s_axil_rdata   = rdata_q;

  assign req_o   = (state_q == S_REQ);
  assign we_o    = we_q;
  assign addr_o  = addr_q;
  assign wdata_o = wdata_q;

endmodule

`default_nettype wire
