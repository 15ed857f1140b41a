package v1beta1

import "k8s.io/apimachinery/pkg/runtime"

// knownTypes lists every kind (and its List) served in this group version.
func knownTypes() []runtime.Object {
	return []runtime.Object{
		&DeviceModel{}, &DeviceModelList{},
		&Device{}, &DeviceList{},
		&DeviceStatus{}, &DeviceStatusList{},
	}
}
