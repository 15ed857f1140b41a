// Package devsim simulates devices for demos and tests. Modbus is a Modbus
// TCP server (the real protocol stack, on a real socket) that behaves like a
// thermometer with an attached heater:
//
//	Input registers
//	  0         temperature ×10, signed (215 = 21.5 °C)
//	  1         relative humidity ×10, unsigned
//	  2-3       temperature as an IEEE-754 float32, high word first
//	  1000-2999 synthetic counters: (address×7 + seconds running) mod 65536
//	Holding registers
//	  0         temperature ×10, signed (read-only: writes are refused)
//	  1         heater setpoint ×10, 0..1000 (read/write)
//	  1000-2999 scratch memory, initially the address (read/write)
//	Coils
//	  0         heater power (read/write)
//	  1-99      scratch memory (read/write)
//	Discrete inputs
//	  0         heating: power on and temperature below the setpoint
//
// The temperature follows 20 + 5·sin(2πt/10 min) from the simulator's start,
// a slow, deterministic drift. Any other address answers "illegal data
// address"; a request for another unit id answers "gateway target failed
// to respond". The simulator counts the TCP connections it has seen, so
// tests can assert that a client did not reconnect.
package devsim
