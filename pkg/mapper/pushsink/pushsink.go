// Package pushsink builds the sinks a Device's pushMethod names, mapping
// each DMI pushMethod message onto the matching sink's configuration. Its
// Factory is what a mapper binary passes as mapper.Options.SinkFactory.
// Credentials are never in the pushMethod; each sink reads its own from the
// environment or Secret files (see package sink/secret).
package pushsink

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/httpsink"
	"github.com/verge-edge/verge/pkg/mapper/sink/mqttsink"
	"github.com/verge-edge/verge/pkg/mapper/sink/mysqlsink"
	"github.com/verge-edge/verge/pkg/mapper/sink/redissink"
)

// Factory returns a mapper.SinkFactory for the built-in sinks.
func Factory(log *slog.Logger) mapper.SinkFactory {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(_ context.Context, t mapper.PushTarget) (sink.Sink, error) {
		switch t.Kind {
		case mapper.PushHTTP:
			h := t.HTTP
			return httpsink.New(httpsink.Config{HostName: h.GetHostname(), Port: h.GetPort(), RequestPath: h.GetRequestpath(), Timeout: h.GetTimeout()}, httpsink.Options{})
		case mapper.PushMQTT:
			m := t.MQTT
			return mqttsink.New(mqttsink.Config{Address: m.GetAddress(), Topic: m.GetTopic(), QoS: m.GetQos(), Retained: m.GetRetained()}, mqttsink.Options{Logger: log})
		case mapper.PushRedis:
			r := t.Redis.GetRedisClientConfig()
			return redissink.New(redissink.Config{Addr: r.GetAddr(), DB: r.GetDb(), Poolsize: r.GetPoolsize(), MinIdleConns: r.GetMinIdleConns()}, redissink.Options{})
		case mapper.PushMySQL:
			m := t.MySQL.GetMysqlClientConfig()
			return mysqlsink.New(mysqlsink.Config{Addr: m.GetAddr(), Database: m.GetDatabase(), UserName: m.GetUserName()}, mysqlsink.Options{Logger: log})
		}
		return nil, fmt.Errorf("the %s sink is not built into this mapper yet", t.Kind)
	}
}
