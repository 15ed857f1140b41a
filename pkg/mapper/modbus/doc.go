// Package modbus is the mapper SDK driver for Modbus TCP and RTU devices,
// built on github.com/simonvetter/modbus.
//
// Device protocol configData (KubeEdge's field names):
//
//	ip, port                TCP device (or address: "host:port")
//	serialPort              RTU device, with baudRate (19200), dataBits (8),
//	                        parity (none|even|odd) and stopBits
//	communicateMode         TCP or RTU; inferred when absent
//	slaveID                 unit id, default 1
//	timeout                 request timeout in milliseconds, default 1000
//
// Property visitors configData:
//
//	register        CoilRegister, DiscreteInputRegister, HoldingRegister or
//	                InputRegister (the short forms Coil, DiscreteInput,
//	                Holding and Input are accepted too)
//	offset          first address (0-based)
//	limit           number of coils or registers, default 1
//	scale           reading = raw × scale, default 1 (writes divide)
//	isSwap          swap the two bytes of every register
//	isRegisterSwap  reverse the order of the registers (low word first)
//	rawType         Verge: how registers encode a number: uint (default),
//	                int (two's complement) or float (IEEE-754, limit 2 or 4)
//
// A register value is read big-endian after the swaps: 1 register is 16
// bits, 2 are 32, 4 are 64. string and bytes properties take the raw bytes
// (strings lose trailing NULs). Bits read with limit > 1 are packed into an
// integer, bit i = coil offset+i.
//
// Devices on one endpoint (TCP host:port or serial port) share one
// connection, opened on first use and re-opened after a transport error with
// jittered backoff; Modbus exception responses leave it open. Bad visitor
// or protocol configuration is a *mapper.ConfigError, so the device shows as
// unhealthy with the reason.
package modbus
