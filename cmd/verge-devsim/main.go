// Command verge-devsim simulates devices for demos and tests.
//
//	verge-devsim modbus [--address 127.0.0.1:5020] [--unit-id 1]
//
// runs a Modbus TCP thermometer with a heater (register map in
// docs/modbus.md) until interrupted.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/internal/devsim"
	"github.com/verge-edge/verge/internal/logging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verge-devsim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] != "modbus" {
		return fmt.Errorf("usage: verge-devsim modbus [--address host:port] [--unit-id N]")
	}
	fs := pflag.NewFlagSet("verge-devsim modbus", pflag.ContinueOnError)
	addr := fs.String("address", "127.0.0.1:5020", "address to listen on")
	unit := fs.Uint8("unit-id", 1, "Modbus unit (slave) id to answer, 1..247")
	logOpts := logging.Defaults()
	fs.StringVar(&logOpts.Level, "log-level", logOpts.Level, "debug, info, warn or error")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log, err := logging.New(logOpts, os.Stderr)
	if err != nil {
		return err
	}
	sim, err := devsim.NewModbus(devsim.ModbusConfig{Address: *addr, UnitID: *unit, Logger: log})
	if err != nil {
		return err
	}
	if err := sim.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return sim.Stop()
}
