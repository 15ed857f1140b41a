// Command kubemirror writes internal/protocol/kube/zz_generated.types.go:
// plain Go mirrors of the Kubernetes API types the edge handles, with the
// same field names, JSON tags and protobuf field numbers as k8s.io/api, so
// verge-edge can read and write those objects without linking k8s.io/api
// (whose generated code for every core type is the largest part of an edge
// binary otherwise).
//
// The mirror is read from k8s.io/api by reflection; a field whose type is
// not mirrored is left out, except a pointer to a struct, which becomes
// *Unsupported so that code can still tell the field was set. Run it with
// `go generate ./internal/protocol/kube`; its test fails when the
// committed file is stale.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func main() {
	out := flag.String("o", "zz_generated.types.go", "file to write")
	flag.Parse()
	src, err := generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubemirror:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "kubemirror:", err)
		os.Exit(1)
	}
}

// mirrored lists the struct types copied field by field. Named scalar,
// slice and map types of the same packages that these refer to (PodPhase,
// ResourceList, …) are mirrored too, without being listed.
var mirrored = []any{
	// meta/v1
	metav1.TypeMeta{}, metav1.ObjectMeta{}, metav1.OwnerReference{},
	// objects
	corev1.Pod{}, corev1.ConfigMap{}, corev1.Secret{}, corev1.Node{}, corev1.Event{},
	// pod spec
	corev1.PodSpec{}, corev1.Container{}, corev1.ContainerPort{}, corev1.EnvVar{}, corev1.EnvVarSource{},
	corev1.ObjectFieldSelector{}, corev1.ResourceFieldSelector{}, corev1.ConfigMapKeySelector{},
	corev1.SecretKeySelector{}, corev1.EnvFromSource{}, corev1.ConfigMapEnvSource{}, corev1.SecretEnvSource{},
	corev1.LocalObjectReference{}, corev1.ResourceRequirements{}, corev1.VolumeMount{}, corev1.Probe{},
	corev1.ProbeHandler{}, corev1.ExecAction{}, corev1.HTTPGetAction{}, corev1.HTTPHeader{},
	corev1.TCPSocketAction{}, corev1.GRPCAction{}, corev1.Lifecycle{}, corev1.LifecycleHandler{},
	corev1.SleepAction{}, corev1.SecurityContext{}, corev1.Capabilities{}, corev1.PodSecurityContext{},
	corev1.Sysctl{}, corev1.PodDNSConfig{}, corev1.PodDNSConfigOption{}, corev1.HostAlias{},
	corev1.ContainerResizePolicy{}, corev1.PodReadinessGate{},
	// volumes
	corev1.Volume{}, corev1.VolumeSource{}, corev1.HostPathVolumeSource{}, corev1.EmptyDirVolumeSource{},
	corev1.SecretVolumeSource{}, corev1.ConfigMapVolumeSource{}, corev1.KeyToPath{},
	corev1.ProjectedVolumeSource{}, corev1.VolumeProjection{}, corev1.SecretProjection{},
	corev1.ConfigMapProjection{}, corev1.DownwardAPIProjection{}, corev1.DownwardAPIVolumeSource{},
	corev1.DownwardAPIVolumeFile{}, corev1.ServiceAccountTokenProjection{},
	// pod status
	corev1.PodStatus{}, corev1.PodCondition{}, corev1.ContainerStatus{}, corev1.ContainerState{},
	corev1.ContainerStateWaiting{}, corev1.ContainerStateRunning{}, corev1.ContainerStateTerminated{},
	corev1.PodIP{}, corev1.HostIP{},
	// node
	corev1.NodeSpec{}, corev1.NodeStatus{}, corev1.NodeCondition{}, corev1.NodeAddress{},
	corev1.NodeSystemInfo{}, corev1.NodeDaemonEndpoints{}, corev1.DaemonEndpoint{}, corev1.Taint{},
	// event
	corev1.ObjectReference{}, corev1.EventSource{}, corev1.EventSeries{},
}

// handWritten maps API types with their own encodings to the types written
// by hand in package kube.
var handWritten = map[reflect.Type]string{
	reflect.TypeFor[metav1.Time]():      "Time",
	reflect.TypeFor[metav1.MicroTime](): "MicroTime",
	reflect.TypeFor[metav1.Duration]():  "Duration",
}

// handWrittenByName covers types from packages this command does not
// import directly (resource.Quantity, intstr.IntOrString, types.UID).
var handWrittenByName = map[string]string{
	"k8s.io/apimachinery/pkg/api/resource.Quantity":   "Quantity",
	"k8s.io/apimachinery/pkg/util/intstr.IntOrString": "IntOrString",
	"k8s.io/apimachinery/pkg/types.UID":               "types.UID",
}

// mirroredPackages are the packages whose named non-struct types are
// mirrored on demand.
var mirroredPackages = map[string]bool{
	"k8s.io/api/core/v1":                   true,
	"k8s.io/apimachinery/pkg/apis/meta/v1": true,
}

type generator struct {
	structs map[reflect.Type]bool
	named   map[reflect.Type]bool // named non-struct types to declare
	names   map[string]reflect.Type
}

func generate() ([]byte, error) {
	g := &generator{structs: map[reflect.Type]bool{}, named: map[reflect.Type]bool{}, names: map[string]reflect.Type{}}
	for _, v := range mirrored {
		t := reflect.TypeOf(v)
		if err := g.claim(t); err != nil {
			return nil, err
		}
		g.structs[t] = true
	}
	var body bytes.Buffer
	for _, v := range mirrored {
		if err := g.writeStruct(&body, reflect.TypeOf(v)); err != nil {
			return nil, err
		}
	}
	named := make([]reflect.Type, 0, len(g.named))
	for t := range g.named {
		named = append(named, t)
	}
	sort.Slice(named, func(i, j int) bool { return named[i].Name() < named[j].Name() })
	for _, t := range named {
		under, err := g.typeExpr(underlying(t))
		if err != nil {
			return nil, fmt.Errorf("%v: %w", t, err)
		}
		fmt.Fprintf(&body, "\ntype %s %s\n", t.Name(), under)
	}

	var out bytes.Buffer
	out.WriteString("// Code generated by hack/kubemirror from k8s.io/api; DO NOT EDIT.\n\npackage kube\n\n")
	out.WriteString("import \"k8s.io/apimachinery/pkg/types\"\n")
	out.Write(body.Bytes())
	return format.Source(out.Bytes())
}

// claim reserves t's name in the output package: core/v1 and meta/v1 must
// not both contribute a type of the same name.
func (g *generator) claim(t reflect.Type) error {
	if prev, ok := g.names[t.Name()]; ok && prev != t {
		return fmt.Errorf("%v and %v would share the name %s", prev, t, t.Name())
	}
	g.names[t.Name()] = t
	return nil
}

func (g *generator) writeStruct(w *bytes.Buffer, t reflect.Type) error {
	fmt.Fprintf(w, "\n// %s mirrors %s of %s.\ntype %s struct {\n", t.Name(), t.Name(), t.PkgPath(), t.Name())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		expr, err := g.fieldType(f.Type)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		if expr == "" {
			continue // a type the edge does not need
		}
		if f.Anonymous {
			fmt.Fprintf(w, "\t%s `%s`\n", expr, f.Tag)
			continue
		}
		fmt.Fprintf(w, "\t%s %s `%s`\n", f.Name, expr, f.Tag)
	}
	w.WriteString("}\n")
	return nil
}

// fieldType is the Go type expression of a mirrored field, or "" when the
// field is left out.
func (g *generator) fieldType(t reflect.Type) (string, error) {
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && !g.known(t.Elem()) {
		return "*Unsupported", nil
	}
	if !g.representable(t) {
		return "", nil
	}
	return g.typeExpr(t)
}

// known reports whether t has a mirror (listed or hand-written).
func (g *generator) known(t reflect.Type) bool {
	if g.structs[t] {
		return true
	}
	if _, ok := handWritten[t]; ok {
		return true
	}
	_, ok := handWrittenByName[t.PkgPath()+"."+t.Name()]
	return ok
}

// representable reports whether every struct type inside t is known.
func (g *generator) representable(t reflect.Type) bool {
	if g.known(t) {
		return true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		return g.representable(t.Elem())
	case reflect.Map:
		return g.representable(t.Key()) && g.representable(t.Elem())
	case reflect.Struct:
		return false
	}
	return true
}

func (g *generator) typeExpr(t reflect.Type) (string, error) {
	if name, ok := handWritten[t]; ok {
		return name, nil
	}
	if name, ok := handWrittenByName[t.PkgPath()+"."+t.Name()]; ok {
		return name, nil
	}
	if g.structs[t] {
		return t.Name(), nil
	}
	if t.Name() != "" && t.PkgPath() != "" {
		if !mirroredPackages[t.PkgPath()] {
			return "", fmt.Errorf("type %v from a package that is not mirrored", t)
		}
		if t.Kind() == reflect.Struct {
			return "", fmt.Errorf("struct %v is not listed", t)
		}
		if err := g.claim(t); err != nil {
			return "", err
		}
		g.named[t] = true
		return t.Name(), nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		e, err := g.typeExpr(t.Elem())
		return "*" + e, err
	case reflect.Slice:
		e, err := g.typeExpr(t.Elem())
		return "[]" + e, err
	case reflect.Map:
		k, err := g.typeExpr(t.Key())
		if err != nil {
			return "", err
		}
		v, err := g.typeExpr(t.Elem())
		return "map[" + k + "]" + v, err
	case reflect.Struct:
		return "", fmt.Errorf("anonymous struct %v", t)
	}
	if strings.Contains(t.String(), ".") {
		return "", fmt.Errorf("unexpected named type %v", t)
	}
	return t.String(), nil
}

// underlying is the unnamed type with t's structure.
func underlying(t reflect.Type) reflect.Type {
	switch t.Kind() {
	case reflect.Slice:
		return reflect.SliceOf(t.Elem())
	case reflect.Map:
		return reflect.MapOf(t.Key(), t.Elem())
	case reflect.Pointer:
		return reflect.PointerTo(t.Elem())
	case reflect.String:
		return reflect.TypeFor[string]()
	case reflect.Bool:
		return reflect.TypeFor[bool]()
	case reflect.Int32:
		return reflect.TypeFor[int32]()
	case reflect.Int64:
		return reflect.TypeFor[int64]()
	case reflect.Int:
		return reflect.TypeFor[int]()
	}
	return t
}
