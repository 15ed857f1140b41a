package workerenv

import (
	"errors"
	"fmt"
	"net"
	"net/url"
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

// reader collects errors while reading variables.
type reader struct {
	get  Lookup
	errs []error
}

func (r *reader) str(name, def string) string {
	if v, ok := r.get(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func (r *reader) required(name, want string) string {
	v := r.str(name, "")
	if v == "" {
		r.errs = append(r.errs, &Error{Variable: name, Want: want})
	}
	return v
}

func (r *reader) fail(name, value, want string) {
	r.errs = append(r.errs, &Error{Variable: name, Value: value, Want: want})
}

func (r *reader) intIn(name string, def, lo, hi int) int {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		r.fail(name, s, fmt.Sprintf("an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

func (r *reader) port(name string, def int) int { return r.intIn(name, def, 1, 65535) }

func (r *reader) host(name, def string, required bool) string {
	var h string
	if required {
		h = r.required(name, "a host name or IP address")
	} else {
		h = r.str(name, def)
	}
	if h != "" && (strings.ContainsAny(h, "/:?# ") && net.ParseIP(h) == nil) {
		r.fail(name, h, "a host name or IP address without scheme, port or path")
	}
	return h
}

func (r *reader) httpURL(name, def string) string {
	s := r.str(name, def)
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail(name, s, "an http(s) URL such as http://localhost:9100")
	}
	return s
}

func (r *reader) params(name string) []ai.Parameter {
	s := r.str(name, "")
	ps, err := ai.ParseParameters(s)
	if err != nil {
		r.fail(name, s, fmt.Sprintf(`a JSON list such as [{"key":"threshold","value":"0.9"}] (%v)`, err))
	}
	return ps
}

func (r *reader) transmitter() string {
	t := r.str("TRANSMITTER", "ws")
	if t != "ws" {
		r.fail("TRANSMITTER", t, `"ws" (the Verge SDK exchanges weights over the aggregator's WebSocket; use transmitter.ws or leave transmitter empty)`)
	}
	return t
}

func (r *reader) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return errors.Join(r.errs...)
}

// Common are the variables every worker gets.
type Common struct {
	WorkerName     string // WORKER_NAME: the pod's name
	Namespace      string // NAMESPACE
	LCServer       string // LC_SERVER: the local controller for reports
	ModelURL       string // MODEL_URL: the model to load (JI) or to write (FL aggregator)
	DataPathPrefix string // DATA_PATH_PREFIX
}

func (r *reader) common() Common {
	return Common{
		WorkerName:     r.required("WORKER_NAME", "the pod's name (the controllers set it from metadata.name)"),
		Namespace:      r.str("NAMESPACE", ""),
		LCServer:       r.httpURL("LC_SERVER", "http://127.0.0.1:9100"),
		ModelURL:       r.str("MODEL_URL", ""),
		DataPathPrefix: r.str("DATA_PATH_PREFIX", "/home/data"),
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
	r := &reader{get: get}
	e := JointInferenceEdge{
		Common:        r.common(),
		ServiceName:   r.required("SERVICE_NAME", "the JointInferenceService's name"),
		CloudHost:     r.host("BIG_MODEL_IP", "", true),
		CloudPort:     r.port("BIG_MODEL_PORT", 5000),
		HEMName:       r.str("HEM_NAME", ""),
		HEMParameters: r.params("HEM_PARAMETERS"),
		ReportPeriod:  time.Duration(r.intIn("LC_PERIOD", 30, 1, 86400)) * time.Second,
	}
	if e.HEMName != "" && len(r.errs) == 0 {
		if _, err := e.Filter(hem.Options{}); err != nil {
			r.fail("HEM_NAME", e.HEMName, fmt.Sprintf("a valid algorithm and HEM_PARAMETERS (%v)", err))
		}
	}
	return e, r.err()
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
	r := &reader{get: get}
	c := JointInferenceCloud{
		Common:      r.common(),
		ServiceName: r.required("SERVICE_NAME", "the JointInferenceService's name"),
		BindIP:      r.host("BIG_MODEL_BIND_IP", "0.0.0.0", false),
		BindPort:    r.port("BIG_MODEL_BIND_PORT", 5000),
	}
	return c, r.err()
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
	r := &reader{get: get}
	t := FederatedTrainer{
		Common:                r.common(),
		JobName:               r.required("JOB_NAME", "the FederatedLearningJob's name"),
		AggregatorHost:        r.host("AGG_IP", "", true),
		AggregatorPort:        r.port("AGG_PORT", 7363),
		Protocol:              r.str("AGG_PROTOCOL", "ws"),
		TrainDatasetURL:       r.required("TRAIN_DATASET_URL", "the training dataset's index or directory"),
		DatasetName:           r.str("DATASET_NAME", ""),
		ModelName:             r.str("MODEL_NAME", ""),
		PretrainedModelURL:    r.str("PRETRAINED_MODEL_URL", ""),
		Participants:          r.intIn("PARTICIPANTS_COUNT", 0, 1, 1000000),
		Aggregation:           r.str("AGGREGATION_ALGORITHM", federated.NameFedAvg),
		AggregationParameters: r.params("AGGREGATION_PARAMETERS"),
	}
	r.transmitter()
	if t.Protocol != "ws" && t.Protocol != "wss" {
		r.fail("AGG_PROTOCOL", t.Protocol, "ws or wss")
	}
	if len(r.errs) == 0 {
		mu, err := federated.ProximalMu(t.Aggregation, t.AggregationParameters)
		if err != nil {
			r.fail("AGGREGATION_ALGORITHM", t.Aggregation, fmt.Sprintf("a valid algorithm and AGGREGATION_PARAMETERS (%v)", err))
		}
		t.ProximalMu = mu
	}
	return t, r.err()
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
	r := &reader{get: get}
	a := FederatedAggregator{
		Common:                r.common(),
		JobName:               r.required("JOB_NAME", "the FederatedLearningJob's name"),
		BindIP:                r.host("AGG_BIND_IP", "0.0.0.0", false),
		BindPort:              r.port("AGG_BIND_PORT", 7363),
		Participants:          r.intIn("PARTICIPANTS_COUNT", 1, 1, 1000000),
		Aggregation:           r.str("AGGREGATION_ALGORITHM", federated.NameFedAvg),
		AggregationParameters: r.params("AGGREGATION_PARAMETERS"),
		PretrainedModelURL:    r.str("PRETRAINED_MODEL_URL", ""),
		RoundTimeout:          time.Minute,
	}
	a.MinClients = r.intIn("MIN_CLIENTS_PER_ROUND", a.Participants, 1, a.Participants)
	if s := r.str("ROUND_TIMEOUT", ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			r.fail("ROUND_TIMEOUT", s, "a positive Go duration such as 90s or 2m")
		} else {
			a.RoundTimeout = d
		}
	}
	r.transmitter()

	name, op, value := r.str("STOP_METRIC", ""), r.str("STOP_METRIC_OPERATOR", ""), r.str("STOP_METRIC_VALUE", "")
	if name != "" || op != "" || value != "" {
		t, err := federated.ParseTargetMetric(name, op, value)
		if err != nil {
			r.fail("STOP_METRIC", name, fmt.Sprintf("STOP_METRIC, STOP_METRIC_OPERATOR (>=, >, <=, <) and STOP_METRIC_VALUE set together (%v)", err))
		} else {
			a.Stop.Target = t
		}
	}
	switch {
	case r.str("STOP_ROUNDS", "") != "":
		a.Stop.Rounds = r.intIn("STOP_ROUNDS", 0, 1, 1000000)
	case r.str("EXIT_ROUND", "") != "":
		a.Stop.Rounds = r.intIn("EXIT_ROUND", 0, 1, 1000000)
	case r.str("exit_round", "") != "":
		a.Stop.Rounds = r.intIn("exit_round", 0, 1, 1000000)
	case a.Stop.Target == nil:
		a.Stop.Rounds = 3
	}
	if len(r.errs) == 0 {
		if _, err := federated.NewAlgorithm(a.Aggregation, a.AggregationParameters); err != nil {
			r.fail("AGGREGATION_ALGORITHM", a.Aggregation, fmt.Sprintf("a valid algorithm and AGGREGATION_PARAMETERS (%v)", err))
		}
	}
	return a, r.err()
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
