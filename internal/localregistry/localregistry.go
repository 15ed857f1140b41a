// Package localregistry serves an OCI image registry on loopback for the
// all-in-one cluster (`verge up`): images built with `verge image build`
// are pushed to it and every edge node pulls from it with no further
// set-up. It is the CNCF distribution registry (the reference
// implementation of the OCI distribution spec) with filesystem storage, so
// images survive restarts; `verge up` runs it as a supervised process
// (`verge registry serve`).
package localregistry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the storage driver Serve configures
	"github.com/sirupsen/logrus"
)

// Options configure Serve.
type Options struct {
	// Dir holds the images.
	Dir string
	// Listen is host:port; use a loopback address.
	Listen string
	// Log receives the registry's log (warnings and errors).
	Log io.Writer
}

// Serve runs the registry until ctx ends.
func Serve(ctx context.Context, o Options) error {
	// The registry logs through logrus' standard logger; this process runs
	// nothing else, so it is configured here.
	logrus.SetOutput(o.Log)
	logrus.SetLevel(logrus.WarnLevel)
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": o.Dir},
			// Deleting images is not needed locally and keeps it simple.
			"delete": configuration.Parameters{"enabled": false},
		},
	}
	cfg.Log.Level = "warn"
	cfg.Log.AccessLog.Disabled = true
	app := handlers.NewApp(ctx, cfg)
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("image registry: %w", err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
