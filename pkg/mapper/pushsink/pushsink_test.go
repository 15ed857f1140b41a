package pushsink

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// An HTTP pushMethod becomes a working HTTP sink aimed where it says.
func TestHTTPPushMethod(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	defer srv.Close()
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	p, err := strconv.ParseInt(port, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Factory(nil)(context.Background(), mapper.PushTarget{Kind: mapper.PushHTTP, HTTP: &dmi.PushMethodHTTP{Hostname: host, Port: p, Requestpath: "/readings", Timeout: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	err = s.Write(context.Background(), []sink.Sample{{Namespace: "default", Device: "d", Property: "p", Value: "1", Type: "int", Timestamp: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/readings" {
		t.Errorf("requests to %v, want one to /readings", paths)
	}
}

func TestUnavailableKindsSayWhich(t *testing.T) {
	_, err := Factory(nil)(context.Background(), mapper.PushTarget{Kind: mapper.PushTDEngine, TDEngine: &dmi.DBMethodTDEngine{}})
	if err == nil || !strings.Contains(err.Error(), "tdengine") {
		t.Errorf("err = %v", err)
	}
	// The sink's own validation reaches the caller.
	_, err = Factory(nil)(context.Background(), mapper.PushTarget{Kind: mapper.PushHTTP, HTTP: &dmi.PushMethodHTTP{Hostname: "127.0.0.1", Port: 1, Timeout: 5000}})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a 5000 s timeout: err = %v", err)
	}
}
