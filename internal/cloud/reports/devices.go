package reports

import (
	"context"
	"time"

	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// DeviceReports authorizes and applies device reports (the device
// controller, package devices). It answers like Apply.
type DeviceReports interface {
	ApplyDeviceReport(ctx context.Context, node string, r *wire.DeviceReport) (syncpb.Outcome, string, time.Duration)
}

func (a *Applier) applyDevice(ctx context.Context, node string, r *syncpb.Report) (syncpb.Outcome, string, time.Duration) {
	if a.Devices == nil {
		return syncpb.Outcome_OUTCOME_REJECTED, "this verge-cloud does not manage devices", 0
	}
	var d wire.DeviceReport
	if err := wire.Decode(r.Encoding, r.Data, r.Compressed, &d); err != nil {
		return syncpb.Outcome_OUTCOME_REJECTED, "malformed device report: " + err.Error(), 0
	}
	if key := "devices/" + d.Namespace + "/" + d.Name; key != r.Key {
		return syncpb.Outcome_OUTCOME_REJECTED, "device report under key " + r.Key + " is about " + key, 0
	}
	return a.Devices.ApplyDeviceReport(ctx, node, &d)
}
