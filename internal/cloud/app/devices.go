package app

import (
	"context"
	"fmt"

	"k8s.io/client-go/informers"

	"github.com/verge-edge/verge/internal/cloud/devices"
	"github.com/verge-edge/verge/internal/cloud/devices/devclient"
	"github.com/verge-edge/verge/internal/cloud/nodeview"
)

// deviceParts are verge-cloud's device parts: the devices.kubeedge.io
// informers (shared by the node views and the controller) and the device
// controller.
type deviceParts struct {
	informers  *devclient.Informers
	controller *devices.Controller
}

// devices builds the device parts and connects the informers to the node
// views; start them with run.
func (a *App) devices(factory informers.SharedInformerFactory, watcher *nodeview.Watcher) (*deviceParts, error) {
	client, err := devclient.NewClient(a.rest)
	if err != nil {
		return nil, err
	}
	inf, err := devclient.NewInformers(client, 0)
	if err != nil {
		return nil, err
	}
	if err := watcher.WatchDevices(inf); err != nil {
		return nil, err
	}
	ctrl, err := devices.New(devices.Options{
		Client:       client,
		Informers:    inf,
		Nodes:        factory.Core().V1().Nodes().Lister(),
		NodeInformer: factory.Core().V1().Nodes().Informer(),
		Logger:       a.logger,
		Registry:     a.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("device controller: %w", err)
	}
	return &deviceParts{informers: inf, controller: ctrl}, nil
}

// run starts the informers and runs the controller until ctx ends.
func (d *deviceParts) run(ctx context.Context) error {
	d.informers.Start(ctx)
	return d.controller.Start(ctx)
}
