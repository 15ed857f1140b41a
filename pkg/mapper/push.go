package mapper

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// PushKind names a destination type of a property's pushMethod.
type PushKind string

// Destination types, as in the Device CRD's pushMethod and dbMethod.
const (
	PushHTTP      PushKind = "http"
	PushMQTT      PushKind = "mqtt"
	PushOTEL      PushKind = "otel"
	PushInfluxDB2 PushKind = "influxdb2"
	PushRedis     PushKind = "redis"
	PushTDEngine  PushKind = "tdengine"
	PushMySQL     PushKind = "mysql"
)

// PushTarget is one destination from a property's pushMethod: Kind says
// which of the fields is set. Unlike upstream, where one of http/mqtt/otel
// wins, every destination a property names receives its samples.
type PushTarget struct {
	Kind      PushKind
	HTTP      *dmi.PushMethodHTTP
	MQTT      *dmi.PushMethodMQTT
	OTEL      *dmi.PushMethodOTEL
	Influxdb2 *dmi.DBMethodInfluxdb2
	Redis     *dmi.DBMethodRedis
	TDEngine  *dmi.DBMethodTDEngine
	MySQL     *dmi.DBMethodMySQL
}

func (t PushTarget) message() proto.Message {
	switch t.Kind {
	case PushHTTP:
		return t.HTTP
	case PushMQTT:
		return t.MQTT
	case PushOTEL:
		return t.OTEL
	case PushInfluxDB2:
		return t.Influxdb2
	case PushRedis:
		return t.Redis
	case PushTDEngine:
		return t.TDEngine
	case PushMySQL:
		return t.MySQL
	}
	return nil
}

// Key identifies a destination: properties with equal keys share one sink
// (one connection, one buffer).
func (t PushTarget) Key() string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(t.message())
	if err != nil {
		return string(t.Kind) + ":?"
	}
	// protojson output is not byte-stable across library versions, but is
	// within one process, which is all a key needs.
	return string(t.Kind) + ":" + string(b)
}

// SinkFactory builds the sink for a push destination. Credentials come
// from the environment (TOKEN, USERNAME, PASSWORD, …), never from the
// target, which mirrors the Device CRD.
type SinkFactory func(ctx context.Context, t PushTarget) (sink.Sink, error)

// pushTargets lists the destinations a pushMethod names.
func pushTargets(pm *dmi.PushMethod) []PushTarget {
	if pm == nil {
		return nil
	}
	var out []PushTarget
	if pm.GetHttp() != nil {
		out = append(out, PushTarget{Kind: PushHTTP, HTTP: pm.GetHttp()})
	}
	if pm.GetMqtt() != nil {
		out = append(out, PushTarget{Kind: PushMQTT, MQTT: pm.GetMqtt()})
	}
	if pm.GetOtel() != nil {
		out = append(out, PushTarget{Kind: PushOTEL, OTEL: pm.GetOtel()})
	}
	db := pm.GetDbMethod()
	if db.GetInfluxdb2() != nil {
		out = append(out, PushTarget{Kind: PushInfluxDB2, Influxdb2: db.GetInfluxdb2()})
	}
	if db.GetRedis() != nil {
		out = append(out, PushTarget{Kind: PushRedis, Redis: db.GetRedis()})
	}
	if db.GetTdengine() != nil {
		out = append(out, PushTarget{Kind: PushTDEngine, TDEngine: db.GetTdengine()})
	}
	if db.GetMysql() != nil {
		out = append(out, PushTarget{Kind: PushMySQL, MySQL: db.GetMysql()})
	}
	return out
}

func noSinkFactory(_ context.Context, t PushTarget) (sink.Sink, error) {
	return nil, fmt.Errorf("this mapper has no sink for pushMethod %s: build it with a SinkFactory", t.Kind)
}
