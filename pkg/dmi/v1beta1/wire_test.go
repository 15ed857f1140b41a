package v1beta1_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// upstreamFields lists every field of KubeEdge's DMI v1beta1 api.proto as
// message.field → number. Changing any of them breaks the wire format with
// upstream mappers and edges.
var upstreamFields = map[string]protoreflect.FieldNumber{
	"MapperRegisterRequest.withData": 1, "MapperRegisterRequest.mapper": 2,
	"MapperRegisterResponse.modelList": 1, "MapperRegisterResponse.deviceList": 2,
	"DeviceModel.name": 1, "DeviceModel.spec": 2, "DeviceModel.namespace": 3,
	"DeviceModelSpec.properties": 1, "DeviceModelSpec.commands": 2,
	"ModelProperty.name": 1, "ModelProperty.description": 2, "ModelProperty.type": 3, "ModelProperty.accessMode": 4,
	"ModelProperty.minimum": 5, "ModelProperty.maximum": 6, "ModelProperty.unit": 7,
	"DeviceCommand.name": 1, "DeviceCommand.url": 2, "DeviceCommand.method": 3, "DeviceCommand.status_code": 4,
	"DeviceCommand.parameters": 5, "DeviceCommand.response": 6,
	"Device.name": 1, "Device.spec": 2, "Device.status": 3, "Device.namespace": 4,
	"DeviceSpec.deviceModelReference": 1, "DeviceSpec.protocol": 2, "DeviceSpec.properties": 3, "DeviceSpec.methods": 4,
	"DeviceMethod.name": 1, "DeviceMethod.description": 2, "DeviceMethod.propertyNames": 3,
	"DeviceProperty.name": 1, "DeviceProperty.desired": 2, "DeviceProperty.visitors": 3, "DeviceProperty.reportCycle": 4,
	"DeviceProperty.collectCycle": 5, "DeviceProperty.reportToCloud": 6, "DeviceProperty.pushMethod": 7,
	"ProtocolConfig.protocolName": 1, "ProtocolConfig.configData": 2,
	"VisitorConfig.protocolName": 1, "VisitorConfig.configData": 2,
	"CustomizedValue.data": 1,
	"PushMethod.http":      1, "PushMethod.mqtt": 2, "PushMethod.dbMethod": 3, "PushMethod.otel": 4, "PushMethod.anomalyDetection": 5,
	"PushMethodHTTP.hostname": 1, "PushMethodHTTP.port": 2, "PushMethodHTTP.requestpath": 3, "PushMethodHTTP.timeout": 4,
	"PushMethodMQTT.address": 1, "PushMethodMQTT.topic": 2, "PushMethodMQTT.qos": 3, "PushMethodMQTT.retained": 4,
	"PushMethodOTEL.endpointURL": 1,
	"DBMethod.influxdb2":         1, "DBMethod.redis": 2, "DBMethod.tdengine": 3, "DBMethod.mysql": 4,
	"DBMethodInfluxdb2.influxdb2ClientConfig": 1, "DBMethodInfluxdb2.influxdb2DataConfig": 2,
	"Influxdb2DataConfig.measurement": 1, "Influxdb2DataConfig.tag": 2, "Influxdb2DataConfig.fieldKey": 3,
	"Influxdb2ClientConfig.url": 1, "Influxdb2ClientConfig.org": 2, "Influxdb2ClientConfig.bucket": 3,
	"DBMethodRedis.redisClientConfig": 1,
	"RedisClientConfig.addr":          1, "RedisClientConfig.db": 2, "RedisClientConfig.poolsize": 3, "RedisClientConfig.minIdleConns": 4,
	"DBMethodTDEngine.tdEngineClientConfig": 1,
	"TDEngineClientConfig.addr":             1, "TDEngineClientConfig.dbname": 2,
	"DBMethodMySQL.mysqlClientConfig": 1,
	"MySQLClientConfig.addr":          1, "MySQLClientConfig.database": 2, "MySQLClientConfig.userName": 3,
	"DBMethodOTEL.otelExporterConfig": 1,
	"OTELExporterConfig.endpointURL":  1,
	"AnomalyDetection.data":           1,
	"MapperInfo.name":                 1, "MapperInfo.version": 2, "MapperInfo.api_version": 3, "MapperInfo.protocol": 4,
	"MapperInfo.address": 5, "MapperInfo.state": 6,
	"ReportDeviceStatusRequest.deviceName": 1, "ReportDeviceStatusRequest.reportedDevice": 2, "ReportDeviceStatusRequest.deviceNamespace": 3,
	"ReportDeviceStatesRequest.deviceName": 1, "ReportDeviceStatesRequest.deviceNamespace": 2, "ReportDeviceStatesRequest.state": 3,
	"DeviceStatus.twins": 1, "DeviceStatus.reportToCloud": 2, "DeviceStatus.reportCycle": 3,
	"Twin.propertyName": 1, "Twin.observedDesired": 2, "Twin.reported": 3,
	"TwinProperty.value": 1, "TwinProperty.metadata": 2,
	"RegisterDeviceRequest.device":      1,
	"RegisterDeviceResponse.deviceName": 1, "RegisterDeviceResponse.deviceNamespace": 2,
	"CreateDeviceModelRequest.model":            1,
	"CreateDeviceModelResponse.deviceModelName": 1, "CreateDeviceModelResponse.deviceModelNamespace": 2,
	"RemoveDeviceRequest.deviceName": 1, "RemoveDeviceRequest.deviceNamespace": 2,
	"RemoveDeviceModelRequest.modelName": 1, "RemoveDeviceModelRequest.modelNamespace": 2,
	"UpdateDeviceRequest.device":     1,
	"UpdateDeviceModelRequest.model": 1,
	"GetDeviceRequest.deviceName":    1, "GetDeviceRequest.deviceNamespace": 2,
	"GetDeviceResponse.device": 1,
}

// Messages upstream has that carry no fields.
var upstreamEmpty = []string{
	"ReportDeviceStatusResponse", "ReportDeviceStatesResponse", "RemoveDeviceResponse",
	"RemoveDeviceModelResponse", "UpdateDeviceResponse", "UpdateDeviceModelResponse",
}

// Verge's additive extensions: field numbers ≥ 1000, ignored upstream.
var vergeExtensions = map[string]protoreflect.FieldNumber{
	"ReportDeviceStatesRequest.reason": 1001,
}

func TestWireCompatibleWithUpstream(t *testing.T) {
	fd := dmi.File_pkg_dmi_v1beta1_api_proto
	if fd.Package() != "v1beta1" {
		t.Fatalf("proto package is %q, upstream uses v1beta1", fd.Package())
	}
	seen := map[string]bool{}
	msgs := fd.Messages()
	for i := 0; i < msgs.Len(); i++ {
		m := msgs.Get(i)
		fields := m.Fields()
		for j := 0; j < fields.Len(); j++ {
			f := fields.Get(j)
			key := string(m.Name()) + "." + string(f.Name())
			seen[key] = true
			want, ok := upstreamFields[key]
			if !ok {
				want, ok = vergeExtensions[key]
			}
			if !ok {
				t.Errorf("field %s is neither upstream nor a listed Verge extension", key)
				continue
			}
			if f.Number() != want {
				t.Errorf("field %s has number %d, want %d", key, f.Number(), want)
			}
		}
	}
	for key := range upstreamFields {
		if !seen[key] {
			t.Errorf("upstream field %s is missing", key)
		}
	}
	for _, name := range upstreamEmpty {
		if m := msgs.ByName(protoreflect.Name(name)); m == nil || m.Fields().Len() != 0 {
			t.Errorf("upstream message %s must exist and be empty", name)
		}
	}

	methods := map[string][]string{
		"DeviceManagerService": {"MapperRegister", "ReportDeviceStatus", "ReportDeviceStates"},
		"DeviceMapperService":  {"RegisterDevice", "RemoveDevice", "UpdateDevice", "CreateDeviceModel", "RemoveDeviceModel", "UpdateDeviceModel", "GetDevice"},
	}
	for svc, names := range methods {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("v1beta1." + svc))
		if err != nil {
			t.Fatalf("service v1beta1.%s: %v", svc, err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		if sd.Methods().Len() != len(names) {
			t.Errorf("service %s has %d methods, upstream has %d", svc, sd.Methods().Len(), len(names))
		}
		for _, n := range names {
			if sd.Methods().ByName(protoreflect.Name(n)) == nil {
				t.Errorf("service %s lacks upstream method %s", svc, n)
			}
		}
	}
	if dmi.DeviceManagerService_MapperRegister_FullMethodName != "/v1beta1.DeviceManagerService/MapperRegister" {
		t.Errorf("MapperRegister path is %s", dmi.DeviceManagerService_MapperRegister_FullMethodName)
	}
}
