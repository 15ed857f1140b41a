package devicetwin

import (
	"fmt"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// ToDMIDevice converts a Device, its spec already merged with its model
// (devicespec.ResolveDevice) and with the effective desired values in
// place, into the DMI message a mapper receives. Free-form configuration
// keeps nested objects and lists (as google.protobuf.Value; upstream edges
// could only send flat scalars). Pure.
func ToDMIDevice(d *wire.Device) (*dmi.Device, error) {
	spec := &dmi.DeviceSpec{DeviceModelReference: d.Spec.DeviceModelRef.Name}
	pc, err := customized(d.Spec.Protocol.ConfigData)
	if err != nil {
		return nil, fmt.Errorf("protocol configData: %w", err)
	}
	spec.Protocol = &dmi.ProtocolConfig{ProtocolName: d.Spec.Protocol.ProtocolName, ConfigData: pc}
	for _, p := range d.Spec.Properties {
		dp := &dmi.DeviceProperty{Name: p.Name, ReportCycle: p.ReportCycle, CollectCycle: p.CollectCycle, ReportToCloud: p.ReportToCloud}
		if p.Desired != nil {
			dp.Desired = &dmi.TwinProperty{Value: p.Desired.Value, Metadata: p.Desired.Metadata}
		}
		if p.Visitors != nil {
			cd, err := customized(p.Visitors.ConfigData)
			if err != nil {
				return nil, fmt.Errorf("property %s: visitors configData: %w", p.Name, err)
			}
			dp.Visitors = &dmi.VisitorConfig{ProtocolName: p.Visitors.ProtocolName, ConfigData: cd}
		}
		if p.PushMethod != nil {
			pm, err := pushMethod(p.PushMethod)
			if err != nil {
				return nil, fmt.Errorf("property %s: pushMethod: %w", p.Name, err)
			}
			dp.PushMethod = pm
		}
		spec.Properties = append(spec.Properties, dp)
	}
	for _, m := range d.Spec.Methods {
		spec.Methods = append(spec.Methods, &dmi.DeviceMethod{Name: m.Name, Description: m.Description, PropertyNames: m.PropertyNames})
	}
	// State reporting comes from spec.stateReport only. The pre-1.23 place,
	// the Device's status.reportToCloud and reportCycle, never reaches a
	// node: the cloud sends Devices without status.
	status := &dmi.DeviceStatus{}
	if sr := d.Spec.StateReport; sr != nil {
		status.ReportToCloud, status.ReportCycle = sr.ReportToCloud, sr.ReportCycle
	}
	return &dmi.Device{Name: d.Name, Namespace: d.Namespace, Spec: spec, Status: status}, nil
}

// ToDMIModel converts a DeviceModel into its DMI message (properties only:
// the protocol and model visitors reach mappers merged into each Device).
// Pure.
func ToDMIModel(m *wire.DeviceModel) *dmi.DeviceModel {
	out := &dmi.DeviceModel{Name: m.Name, Namespace: m.Namespace, Spec: &dmi.DeviceModelSpec{}}
	for _, p := range m.Spec.Properties {
		out.Spec.Properties = append(out.Spec.Properties, &dmi.ModelProperty{
			Name: p.Name, Description: p.Description, Type: string(p.Type), AccessMode: string(p.AccessMode),
			Minimum: p.Minimum, Maximum: p.Maximum, Unit: p.Unit,
		})
	}
	return out
}

func customized(cv *devicespec.CustomizedValue) (*dmi.CustomizedValue, error) {
	if cv.IsEmpty() {
		return nil, nil
	}
	m, err := cv.Map()
	if err != nil {
		return nil, err
	}
	return dmi.NewCustomizedValue(m)
}

func pushMethod(pm *devicespec.PushMethod) (*dmi.PushMethod, error) {
	out := &dmi.PushMethod{}
	if h := pm.HTTP; h != nil {
		out.Http = &dmi.PushMethodHTTP{Hostname: h.HostName, Port: h.Port, Requestpath: h.RequestPath, Timeout: h.Timeout}
	}
	if m := pm.MQTT; m != nil {
		out.Mqtt = &dmi.PushMethodMQTT{Address: m.Address, Topic: m.Topic, Qos: m.QoS, Retained: m.Retained}
	}
	if o := pm.OTEL; o != nil {
		out.Otel = &dmi.PushMethodOTEL{EndpointURL: o.EndpointURL}
	}
	if db := pm.DBMethod; db != nil {
		out.DbMethod = &dmi.DBMethod{}
		if i := db.Influxdb2; i != nil {
			x := &dmi.DBMethodInfluxdb2{}
			if c := i.Influxdb2ClientConfig; c != nil {
				x.Influxdb2ClientConfig = &dmi.Influxdb2ClientConfig{Url: c.URL, Org: c.Org, Bucket: c.Bucket}
			}
			if c := i.Influxdb2DataConfig; c != nil {
				x.Influxdb2DataConfig = &dmi.Influxdb2DataConfig{Measurement: c.Measurement, Tag: c.Tag, FieldKey: c.FieldKey}
			}
			out.DbMethod.Influxdb2 = x
		}
		if r := db.Redis; r != nil {
			x := &dmi.DBMethodRedis{}
			if c := r.RedisClientConfig; c != nil {
				x.RedisClientConfig = &dmi.RedisClientConfig{Addr: c.Addr, Db: c.DB, Poolsize: c.Poolsize, MinIdleConns: c.MinIdleConns}
			}
			out.DbMethod.Redis = x
		}
		if t := db.TDEngine; t != nil {
			x := &dmi.DBMethodTDEngine{}
			if c := t.TDEngineClientConfig; c != nil {
				x.TdEngineClientConfig = &dmi.TDEngineClientConfig{Addr: c.Addr, Dbname: c.DBName}
			}
			out.DbMethod.Tdengine = x
		}
		if m := db.Mysql; m != nil {
			x := &dmi.DBMethodMySQL{}
			if c := m.MySQLClientConfig; c != nil {
				x.MysqlClientConfig = &dmi.MySQLClientConfig{Addr: c.Addr, Database: c.Database, UserName: c.UserName}
			}
			out.DbMethod.Mysql = x
		}
	}
	if a := pm.AnomalyDetection; !a.IsEmpty() {
		m, err := a.Map()
		if err != nil {
			return nil, fmt.Errorf("anomalyDetection: %w", err)
		}
		ad, err := dmi.NewAnomalyDetection(m)
		if err != nil {
			return nil, fmt.Errorf("anomalyDetection: %w", err)
		}
		out.AnomalyDetection = ad
	}
	return out, nil
}
