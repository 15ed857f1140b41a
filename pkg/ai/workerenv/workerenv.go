package workerenv

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verge-edge/verge/pkg/ai"
	"github.com/verge-edge/verge/pkg/ai/federated"
	"github.com/verge-edge/verge/pkg/ai/hem"
)

// Lookup reads one variable; os.LookupEnv in main, a map in tests.
type Lookup func(name string) (string, bool)

// FromMap is a Lookup over m.
func FromMap(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Error is one variable set wrong.
type Error struct {
	Variable string
	Value    string
	Want     string
}

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("environment variable %s is not set: want %s", e.Variable, e.Want)
	}
	return fmt.Sprintf("environment variable %s=%q: want %s", e.Variable, e.Value, e.Want)
}

// Reader reads variables, collecting every problem as an *Error so that a
// worker reports them all at once (Err). Workers with variables of their
// own read them with it too.
type Reader struct {
	get  Lookup
	errs []error
}

// NewReader reads from get.
func NewReader(get Lookup) *Reader { return &Reader{get: get} }

// First returns the first of names that is set (aliases, such as Sedna's
// lower-case names), or names[0] when none is.
func (r *Reader) First(names ...string) string {
	for _, n := range names {
		if v, ok := r.get(n); ok && strings.TrimSpace(v) != "" {
			return n
		}
	}
	return names[0]
}

// String returns the variable, trimmed, or def when it is unset or blank.
func (r *Reader) String(name, def string) string {
	if v, ok := r.get(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// Required returns the variable, recording an error saying want when it
// is unset.
func (r *Reader) Required(name, want string) string {
	v := r.String(name, "")
	if v == "" {
		r.errs = append(r.errs, &Error{Variable: name, Want: want})
	}
	return v
}

// Fail records that name's value is not what is wanted.
func (r *Reader) Fail(name, value, want string) {
	r.errs = append(r.errs, &Error{Variable: name, Value: value, Want: want})
}

// Int reads an integer in [lo, hi].
func (r *Reader) Int(name string, def, lo, hi int) int {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		r.Fail(name, s, fmt.Sprintf("an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

// Float reads a number in [lo, hi] (or (lo, hi] when openLo).
func (r *Reader) Float(name string, def, lo, hi float64, openLo bool) float64 {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < lo || f > hi || openLo && f == lo {
		bracket := "["
		if openLo {
			bracket = "("
		}
		r.Fail(name, s, fmt.Sprintf("a number in %s%g, %g]", bracket, lo, hi))
		return def
	}
	return f
}

// Duration reads a positive Go duration.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r.Fail(name, s, "a positive Go duration such as 200ms or 1s")
		return def
	}
	return d
}

// OneOf reads one of allowed.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	if slices.Contains(allowed, s) {
		return s
	}
	r.Fail(name, s, "one of "+strings.Join(allowed, ", "))
	return def
}

// Host reads a host name or IP address (no scheme, port or path).
func (r *Reader) Host(name, def string, required bool) string {
	var h string
	if required {
		h = r.Required(name, "a host name or IP address")
	} else {
		h = r.String(name, def)
	}
	if h != "" && (strings.ContainsAny(h, "/:?# ") && net.ParseIP(h) == nil) {
		r.Fail(name, h, "a host name or IP address without scheme, port or path")
	}
	return h
}

// Err joins every problem recorded, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return errors.Join(r.errs...)
}

func (r *Reader) port(name string, def int) int { return r.Int(name, def, 1, 65535) }

func (r *Reader) httpURL(name, def string) string {
	s := r.String(name, def)
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.Fail(name, s, "an http(s) URL such as http://localhost:9100")
	}
	return s
}

func (r *Reader) params(name string) []ai.Parameter {
	s := r.String(name, "")
	ps, err := ai.ParseParameters(s)
	if err != nil {
		r.Fail(name, s, fmt.Sprintf(`a JSON list such as [{"key":"threshold","value":"0.9"}] (%v)`, err))
	}
	return ps
}

func (r *Reader) transmitter() string {
	t := r.String("TRANSMITTER", "ws")
	if t != "ws" {
		r.Fail("TRANSMITTER", t, `"ws" (the Verge SDK exchanges weights over the aggregator's WebSocket; use transmitter.ws or leave transmitter empty)`)
	}
	return t
}

// Common are the variables every worker gets.
type Common struct {
	WorkerName     string // WORKER_NAME: the pod's name
	Namespace      string // NAMESPACE
	LCServer       string // LC_SERVER: the local controller for reports
	ModelURL       string // MODEL_URL: the model to load (JI) or to write (FL aggregator)
	DataPathPrefix string // DATA_PATH_PREFIX
}

func (r *Reader) common() Common {
	return Common{
		WorkerName:     r.Required("WORKER_NAME", "the pod's name (the controllers set it from metadata.name)"),
		Namespace:      r.String("NAMESPACE", ""),
		LCServer:       r.httpURL("LC_SERVER", "http://127.0.0.1:9100"),
		ModelURL:       r.String("MODEL_URL", ""),
		DataPathPrefix: r.String("DATA_PATH_PREFIX", "/home/data"),
	}
}

// JointInferenceEdge is an edge worker's configuration.
type JointInferenceEdge struct {
	Common
	ServiceName   string // SERVICE_NAME
	CloudHost     string // BIG_MODEL_IP
	CloudPort     int    // BIG_MODEL_PORT
	HEMName       string // HEM_NAME ("" : no mining, nothing is hard)
	HEMParameters []ai.Parameter
	ReportPeriod  time.Duration // LC_PERIOD
}

// LoadJointInferenceEdge reads an edge worker's environment. The HEM
// algorithm and its parameters are checked.
func LoadJointInferenceEdge(get Lookup) (JointInferenceEdge, error) {
	r := NewReader(get)
	e := JointInferenceEdge{
		Common:        r.common(),
		ServiceName:   r.Required("SERVICE_NAME", "the JointInferenceService's name"),
		CloudHost:     r.Host("BIG_MODEL_IP", "", true),
		CloudPort:     r.port("BIG_MODEL_PORT", 5000),
		HEMName:       r.String("HEM_NAME", ""),
		HEMParameters: r.params("HEM_PARAMETERS"),
		ReportPeriod:  time.Duration(r.Int("LC_PERIOD", 30, 1, 86400)) * time.Second,
	}
	if e.HEMName != "" && len(r.errs) == 0 {
		if _, err := e.Filter(hem.Options{}); err != nil {
			r.Fail("HEM_NAME", e.HEMName, fmt.Sprintf("a valid algorithm and HEM_PARAMETERS (%v)", err))
		}
	}
	return e, r.Err()
}

// CloudURL is the cloud worker's endpoint for the joint-inference client:
// http://{BIG_MODEL_IP}:{BIG_MODEL_PORT}/{SERVICE_NAME}.
func (e JointInferenceEdge) CloudURL() string {
	return "http://" + net.JoinHostPort(e.CloudHost, strconv.Itoa(e.CloudPort)) + "/" + url.PathEscape(e.ServiceName)
}

// Filter builds the hard-example filter; without HEM_NAME, EdgeOnly (as
// upstream, no algorithm means no hard examples).
func (e JointInferenceEdge) Filter(opts hem.Options) (hem.Filter, error) {
	if e.HEMName == "" {
		return hem.EdgeOnlyFilter{}, nil
	}
	return hem.New(e.HEMName, e.HEMParameters, opts)
}

// JointInferenceCloud is a cloud worker's configuration.
type JointInferenceCloud struct {
	Common
	ServiceName string // SERVICE_NAME: the path prefix
	BindIP      string // BIG_MODEL_BIND_IP
	BindPort    int    // BIG_MODEL_BIND_PORT
}

// LoadJointInferenceCloud reads a cloud worker's environment.
func LoadJointInferenceCloud(get Lookup) (JointInferenceCloud, error) {
	r := NewReader(get)
	c := JointInferenceCloud{
		Common:      r.common(),
		ServiceName: r.Required("SERVICE_NAME", "the JointInferenceService's name"),
		BindIP:      r.Host("BIG_MODEL_BIND_IP", "0.0.0.0", false),
		BindPort:    r.port("BIG_MODEL_BIND_PORT", 5000),
	}
	return c, r.Err()
}

// Addr is the address to listen on.
func (c JointInferenceCloud) Addr() string {
	return net.JoinHostPort(c.BindIP, strconv.Itoa(c.BindPort))
}

// FederatedTrainer is a training worker's configuration.
type FederatedTrainer struct {
	Common
	JobName               string // JOB_NAME
	AggregatorHost        string // AGG_IP
	AggregatorPort        int    // AGG_PORT
	Protocol              string // AGG_PROTOCOL: ws or wss
	TrainDatasetURL       string // TRAIN_DATASET_URL
	DatasetName           string // DATASET_NAME
	ModelName             string // MODEL_NAME
	PretrainedModelURL    string // PRETRAINED_MODEL_URL
	Participants          int    // PARTICIPANTS_COUNT (0 when unset)
	Aggregation           string // AGGREGATION_ALGORITHM
	AggregationParameters []ai.Parameter
	// ProximalMu is FedProx's μ (0 for other algorithms).
	ProximalMu float64
}

// LoadFederatedTrainer reads a training worker's environment.
func LoadFederatedTrainer(get Lookup) (FederatedTrainer, error) {
	r := NewReader(get)
	t := FederatedTrainer{
		Common:                r.common(),
		JobName:               r.Required("JOB_NAME", "the FederatedLearningJob's name"),
		AggregatorHost:        r.Host("AGG_IP", "", true),
		AggregatorPort:        r.port("AGG_PORT", 7363),
		Protocol:              r.String("AGG_PROTOCOL", "ws"),
		TrainDatasetURL:       r.Required("TRAIN_DATASET_URL", "the training dataset's index or directory"),
		DatasetName:           r.String("DATASET_NAME", ""),
		ModelName:             r.String("MODEL_NAME", ""),
		PretrainedModelURL:    r.String("PRETRAINED_MODEL_URL", ""),
		Participants:          r.Int("PARTICIPANTS_COUNT", 0, 1, 1000000),
		Aggregation:           r.String("AGGREGATION_ALGORITHM", federated.NameFedAvg),
		AggregationParameters: r.params("AGGREGATION_PARAMETERS"),
	}
	r.transmitter()
	if t.Protocol != "ws" && t.Protocol != "wss" {
		r.Fail("AGG_PROTOCOL", t.Protocol, "ws or wss")
	}
	if len(r.errs) == 0 {
		mu, err := federated.ProximalMu(t.Aggregation, t.AggregationParameters)
		if err != nil {
			r.Fail("AGGREGATION_ALGORITHM", t.Aggregation, fmt.Sprintf("a valid algorithm and AGGREGATION_PARAMETERS (%v)", err))
		}
		t.ProximalMu = mu
	}
	return t, r.Err()
}

// AggregatorURL is the aggregator's WebSocket address,
// {AGG_PROTOCOL}://{AGG_IP}:{AGG_PORT}/{AGGREGATION_ALGORITHM}, as Sedna's
// clients build it.
func (t FederatedTrainer) AggregatorURL() string {
	return t.Protocol + "://" + net.JoinHostPort(t.AggregatorHost, strconv.Itoa(t.AggregatorPort)) + "/" + url.PathEscape(t.Aggregation)
}

// FederatedAggregator is the aggregation worker's configuration.
type FederatedAggregator struct {
	Common
	JobName               string // JOB_NAME
	BindIP                string // AGG_BIND_IP
	BindPort              int    // AGG_BIND_PORT
	Participants          int    // PARTICIPANTS_COUNT
	MinClients            int    // MIN_CLIENTS_PER_ROUND (default Participants)
	RoundTimeout          time.Duration
	Stop                  federated.StopCondition
	Aggregation           string // AGGREGATION_ALGORITHM
	AggregationParameters []ai.Parameter
	PretrainedModelURL    string // PRETRAINED_MODEL_URL
}

// LoadFederatedAggregator reads the aggregation worker's environment.
func LoadFederatedAggregator(get Lookup) (FederatedAggregator, error) {
	r := NewReader(get)
	a := FederatedAggregator{
		Common:                r.common(),
		JobName:               r.Required("JOB_NAME", "the FederatedLearningJob's name"),
		BindIP:                r.Host("AGG_BIND_IP", "0.0.0.0", false),
		BindPort:              r.port("AGG_BIND_PORT", 7363),
		Participants:          r.Int("PARTICIPANTS_COUNT", 1, 1, 1000000),
		Aggregation:           r.String("AGGREGATION_ALGORITHM", federated.NameFedAvg),
		AggregationParameters: r.params("AGGREGATION_PARAMETERS"),
		PretrainedModelURL:    r.String("PRETRAINED_MODEL_URL", ""),
		RoundTimeout:          time.Minute,
	}
	a.MinClients = r.Int("MIN_CLIENTS_PER_ROUND", a.Participants, 1, a.Participants)
	if s := r.String("ROUND_TIMEOUT", ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			r.Fail("ROUND_TIMEOUT", s, "a positive Go duration such as 90s or 2m")
		} else {
			a.RoundTimeout = d
		}
	}
	r.transmitter()

	name, op, value := r.String("STOP_METRIC", ""), r.String("STOP_METRIC_OPERATOR", ""), r.String("STOP_METRIC_VALUE", "")
	if name != "" || op != "" || value != "" {
		t, err := federated.ParseTargetMetric(name, op, value)
		if err != nil {
			r.Fail("STOP_METRIC", name, fmt.Sprintf("STOP_METRIC, STOP_METRIC_OPERATOR (>=, >, <=, <) and STOP_METRIC_VALUE set together (%v)", err))
		} else {
			a.Stop.Target = t
		}
	}
	switch {
	case r.String("STOP_ROUNDS", "") != "":
		a.Stop.Rounds = r.Int("STOP_ROUNDS", 0, 1, 1000000)
	case r.String("EXIT_ROUND", "") != "":
		a.Stop.Rounds = r.Int("EXIT_ROUND", 0, 1, 1000000)
	case r.String("exit_round", "") != "":
		a.Stop.Rounds = r.Int("exit_round", 0, 1, 1000000)
	case a.Stop.Target == nil:
		a.Stop.Rounds = 3
	}
	if len(r.errs) == 0 {
		if _, err := federated.NewAlgorithm(a.Aggregation, a.AggregationParameters); err != nil {
			r.Fail("AGGREGATION_ALGORITHM", a.Aggregation, fmt.Sprintf("a valid algorithm and AGGREGATION_PARAMETERS (%v)", err))
		}
	}
	return a, r.Err()
}

// Addr is the address to listen on.
func (a FederatedAggregator) Addr() string {
	return net.JoinHostPort(a.BindIP, strconv.Itoa(a.BindPort))
}

// RoundConfig builds the aggregator's round configuration (with a fresh
// algorithm instance); add the initial weights if there is a pretrained
// model.
func (a FederatedAggregator) RoundConfig() (federated.RoundConfig, error) {
	alg, err := federated.NewAlgorithm(a.Aggregation, a.AggregationParameters)
	if err != nil {
		return federated.RoundConfig{}, err
	}
	return federated.RoundConfig{
		Participants: a.Participants, MinClients: a.MinClients, RoundTimeout: a.RoundTimeout,
		Stop: a.Stop, Algorithm: alg,
	}, nil
}
