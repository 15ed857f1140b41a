// Package examples embeds the example manifests that `verge up --demo
// devices` applies, so the demo runs exactly what users copy from here.
package examples

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed devices/modbus/*.yaml devices/upstream/*.yaml mapper/modbus/*.yaml
var files embed.FS

// Manifest returns an example manifest by path (e.g.
// "devices/modbus/device.yaml").
func Manifest(path string) ([]byte, error) {
	b, err := files.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("example manifest %s: %w", path, err)
	}
	return b, nil
}

// ModbusMapper is the values mapper/modbus/deployment.yaml is templated
// with.
type ModbusMapper struct {
	Image  string
	DMIDir string
}

// ModbusMapperManifest renders mapper/modbus/deployment.yaml.
func ModbusMapperManifest(v ModbusMapper) ([]byte, error) {
	b, err := Manifest("mapper/modbus/deployment.yaml")
	if err != nil {
		return nil, err
	}
	t, err := template.New("deployment.yaml").Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, v); err != nil {
		return nil, fmt.Errorf("rendering mapper/modbus/deployment.yaml: %w", err)
	}
	return out.Bytes(), nil
}
