package worker

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// Options configures the Sedna controllers. The zero value is not usable:
// start from DefaultOptions.
type Options struct {
	// LCServer is the address of the node-local controller the workers
	// report to (injected as LC_SERVER). The local controller listens on
	// the node's host network, so localhost reaches it from every pod.
	LCServer string `json:"lcServer"`
	// StorageInitializerImage downloads s3:// and http(s):// models and
	// datasets into the worker pod before the worker starts. It receives
	// "source destination-directory" pairs as arguments.
	StorageInitializerImage string `json:"storageInitializerImage"`
	// HardExampleMining lists the algorithm names edge workers implement.
	// A JointInferenceService naming another algorithm gets a Failed
	// condition and no pods.
	HardExampleMining []string `json:"hardExampleMining"`
	// Aggregations lists the aggregation algorithms FL workers implement.
	Aggregations []string `json:"aggregations"`
	// Workers is the number of objects each controller reconciles at once.
	Workers int `json:"workers"`
}

// DefaultOptions returns the options that match the upstream Sedna
// deployment and the algorithms of Verge's worker SDK.
func DefaultOptions() Options {
	return Options{
		LCServer:                "http://localhost:9100",
		StorageInitializerImage: "kubeedge/sedna-storage-initializer:v0.3.0",
		HardExampleMining:       []string{"Threshold", "CrossEntropy", "IBT", "Random", "CloudOnly", "EdgeOnly", "BertRouter"},
		Aggregations:            []string{"FedAvg", "FedAvgM", "FedProx"},
		Workers:                 2,
	}
}

// Validate reports the first problem with the options.
func (o Options) Validate() error {
	var errs []error
	if u, err := url.Parse(o.LCServer); o.LCServer == "" || err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("lcServer %q must be an absolute URL such as http://localhost:9100", o.LCServer))
	}
	if o.StorageInitializerImage == "" {
		errs = append(errs, errors.New("storageInitializerImage must name an image (default kubeedge/sedna-storage-initializer:v0.3.0)"))
	}
	if len(o.HardExampleMining) == 0 {
		errs = append(errs, errors.New("hardExampleMining must list at least one algorithm"))
	}
	if len(o.Aggregations) == 0 {
		errs = append(errs, errors.New("aggregations must list at least one algorithm"))
	}
	if o.Workers < 1 || o.Workers > 64 {
		errs = append(errs, fmt.Errorf("workers is %d; it must be between 1 and 64", o.Workers))
	}
	return errors.Join(errs...)
}

// KnowsHardExampleMining reports whether name is a configured algorithm.
func (o Options) KnowsHardExampleMining(name string) bool {
	return slices.Contains(o.HardExampleMining, name)
}

// KnowsAggregation reports whether name is a configured algorithm.
func (o Options) KnowsAggregation(name string) bool {
	return slices.Contains(o.Aggregations, name)
}
