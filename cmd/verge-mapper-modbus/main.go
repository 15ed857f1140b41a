// Command verge-mapper-modbus is Verge's Modbus mapper: it registers with
// the edge over DMI and serves Modbus TCP and RTU devices with the mapper
// SDK. See docs/modbus.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/internal/logging"
	"github.com/verge-edge/verge/internal/version"
	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/modbus"
	"github.com/verge-edge/verge/pkg/mapper/pushsink"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verge-mapper-modbus:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := mapper.Config{Protocol: "modbus"}
	logOpts := logging.Defaults()
	fs := pflag.NewFlagSet("verge-mapper-modbus", pflag.ContinueOnError)
	fs.StringVar(&cfg.Name, "name", "modbus", "mapper name, unique on the node (the edge binds devices to mappers by name)")
	fs.StringVar(&cfg.Protocol, "protocol", cfg.Protocol, "protocolName of the devices to serve")
	fs.StringVar(&cfg.EdgeSocket, "edge-socket", mapper.DefaultEdgeSocket, "the edge's DMI socket")
	fs.StringVar(&cfg.Socket, "socket", "", "this mapper's DMI socket (default "+mapper.DefaultSocketDir+"/<name>.sock)")
	fs.StringVar(&cfg.REST.Address, "rest-address", mapper.DefaultRESTAddr, `REST API address; "off" disables it; a non-loopback address needs mTLS`)
	fs.StringVar(&cfg.REST.CertFile, "rest-tls-cert", "", "REST API server certificate (PEM)")
	fs.StringVar(&cfg.REST.KeyFile, "rest-tls-key", "", "REST API server key (PEM)")
	fs.StringVar(&cfg.REST.ClientCAFile, "rest-client-ca", "", "CA that signs REST API client certificates (PEM)")
	fs.DurationVar(&cfg.DefaultCollectCycle, "default-collect-cycle", 0, "collect cycle of properties without one (default 1s)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", 0, "bound on one read or write (default 5s)")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", 0, "how often device health is checked (default 5s)")
	fs.Float64Var(&cfg.TwinDeadband, "twin-deadband", 0, "default deadband of numeric properties reported to the cloud twin (0: every change)")
	fs.IntVar(&cfg.Sinks.QueueSize, "sink-queue-size", 0, "samples buffered per sink (default 10000)")
	fs.IntVar(&cfg.Sinks.MaxBatch, "sink-max-batch", 0, "samples per sink write (default 500)")
	fs.DurationVar(&cfg.Sinks.Linger, "sink-linger", 0, "how long sinks gather samples into one write (default 100ms; negative: none)")
	fs.IntVar(&cfg.Sinks.MaxAttempts, "sink-max-attempts", 0, "writes of a batch before it is dropped (default 5)")
	fs.StringVar(&logOpts.Level, "log-level", logOpts.Level, "debug, info, warn or error")
	fs.StringVar(&logOpts.Format, "log-format", logOpts.Format, "text or json")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.Version)
		return nil
	}
	cfg.Version = version.Version
	log, err := logging.New(logOpts, os.Stderr)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := mapper.New(cfg, modbus.New(modbus.Options{Logger: log, Registerer: reg}), mapper.Options{Logger: log, Registry: reg, SinkFactory: pushsink.Factory(log)})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return m.Start(ctx)
}
