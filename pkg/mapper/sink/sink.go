// Package sink is the contract between the mapper SDK and the destinations
// readings are delivered to (cloud twin, HTTP, MQTT, OpenTelemetry,
// databases). The SDK hands each sink batches through its own bounded
// buffer and retries failed batches, so a sink only has to deliver.
package sink

import (
	"context"
	"time"
)

// Sample is one reading of one device property.
type Sample struct {
	Namespace, Device, Property string
	Value                       string // canonical string form, as DMI reports values
	Type                        string // the model property type (int, float, double, boolean, string, bytes, ...)
	Timestamp                   time.Time
}

// Sink delivers samples to one destination. Write delivers a batch; on error the caller retries the whole batch later, so sinks tolerate duplicates.
type Sink interface {
	Name() string
	Write(ctx context.Context, batch []Sample) error
	Close() error
}
