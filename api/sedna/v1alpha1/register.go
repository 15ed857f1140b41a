package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/verge-edge/verge/api/internal/groupversion"
)

// GroupName is the API group of this package.
const GroupName = "sedna.io"

// SchemeGroupVersion is the group and version of every kind in this package.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// AddToScheme registers this package's kinds with a scheme.
var AddToScheme = groupversion.AddToScheme(SchemeGroupVersion, knownTypes)

// Resource qualifies a resource name with this package's group.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}
