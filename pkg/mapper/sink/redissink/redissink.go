// Package redissink stores samples in Redis, the dbMethod.redis
// destination of a device property.
//
// Layout (upstream's, so existing readers keep working): one sorted set per
// device, key = the device name, score = the sample time in Unix
// milliseconds, member = the JSON object
// {"DeviceName","PropertyName","Namespace","Value","Type","TimeStamp"}
// with TimeStamp in Unix milliseconds. Because a sorted set keeps one copy
// of a member, a batch written twice stores each sample once. The key is a
// template ({namespace}, {device}, {property}) so devices of the same name
// in different namespaces can be kept apart, and an optional retention
// trims old members so an edge box does not run out of memory.
package redissink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors dbMethod.redis.redisClientConfig of the Device CRD.
type Config struct {
	// Addr is the server's host:port.
	Addr string `json:"addr,omitempty"`
	// DB is the database number.
	DB int32 `json:"db,omitempty"`
	// Poolsize caps open connections; 0 means go-redis's default.
	Poolsize int32 `json:"poolsize,omitempty"`
	// MinIdleConns keeps this many connections open while idle.
	MinIdleConns int32 `json:"minIdleConns,omitempty"`
}

// DefaultKey is upstream's key: the device name alone.
const DefaultKey = "{device}"

// Options are the settings that are not in the CRD.
type Options struct {
	// Password; the PASSWORD environment variable (as upstream) when it
	// names no source. An unset variable means no AUTH.
	Password secret.Credential
	// Username for Redis ACLs; none by default.
	Username secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// Key is the sorted-set key template; DefaultKey when empty.
	Key string
	// Retention, when positive, removes members older than this on
	// every write.
	Retention time.Duration
	// DialTimeout bounds a new connection; default 5 s.
	DialTimeout time.Duration
	// Now stamps samples without a timestamp and anchors Retention;
	// time.Now when nil.
	Now func() time.Time
}

// DefaultPassword is where the password is read from by default.
var DefaultPassword = secret.Credential{Env: "PASSWORD"}

// Sink is a Redis connection pool. It is safe for concurrent use.
type Sink struct {
	addr   string
	db     int
	key    sinkutil.Template
	opts   Options
	client *redis.Client
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and builds the pool. It does not connect: the first
// Write does, so a mapper starts while Redis is down.
func New(cfg Config, opts Options) (*Sink, error) {
	if cfg.Addr == "" {
		return nil, errors.New("dbMethod.redis: addr is empty: set redisClientConfig.addr to host:port, e.g. 127.0.0.1:6379")
	}
	if _, port, err := net.SplitHostPort(cfg.Addr); err != nil || port == "" {
		return nil, fmt.Errorf("dbMethod.redis: addr %q is not host:port (e.g. 127.0.0.1:6379)", cfg.Addr)
	}
	if cfg.DB < 0 {
		return nil, fmt.Errorf("dbMethod.redis: db %d is negative", cfg.DB)
	}
	if cfg.Poolsize < 0 || cfg.MinIdleConns < 0 {
		return nil, fmt.Errorf("dbMethod.redis: poolsize (%d) and minIdleConns (%d) must not be negative", cfg.Poolsize, cfg.MinIdleConns)
	}
	if cfg.Poolsize > 0 && cfg.MinIdleConns > cfg.Poolsize {
		return nil, fmt.Errorf("dbMethod.redis: minIdleConns %d is more than poolsize %d", cfg.MinIdleConns, cfg.Poolsize)
	}
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	key, err := sinkutil.ParseTemplate(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("redis sink: key %w", err)
	}
	if opts.Retention < 0 {
		return nil, fmt.Errorf("redis sink: retention %v is negative", opts.Retention)
	}
	opts.Password = opts.Password.Or(DefaultPassword)
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sink{addr: cfg.Addr, db: int(cfg.DB), key: key, opts: opts}
	s.client = redis.NewClient(&redis.Options{
		Addr:                       cfg.Addr,
		DB:                         int(cfg.DB),
		PoolSize:                   int(cfg.Poolsize),
		MinIdleConns:               int(cfg.MinIdleConns),
		CredentialsProviderContext: s.credentials,
		DialTimeout:                opts.DialTimeout,
		ContextTimeoutEnabled:      true,
		// The SDK retries whole batches; retrying inside would only
		// delay the error it needs.
		MaxRetries:    -1,
		DialerRetries: 1,
		// RESP2 and no CLIENT SETINFO/maintenance pushes: works with any
		// Redis an edge box may run.
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return s, nil
}

func (s *Sink) credentials(context.Context) (string, string, error) {
	user, _, err := s.opts.Username.Resolve(s.opts.LookupEnv)
	if err != nil {
		return "", "", err
	}
	pass, _, err := s.opts.Password.Resolve(s.opts.LookupEnv)
	if err != nil {
		return "", "", err
	}
	return user, pass, nil
}

// Name identifies the destination.
func (s *Sink) Name() string { return "redis " + s.addr + "/" + strconv.Itoa(s.db) }

// member is upstream's DataModel in JSON; the field names are its Go
// field names, which upstream readers decode.
type member struct {
	DeviceName   string
	PropertyName string
	Namespace    string
	Value        string
	Type         string
	TimeStamp    int64
}

// Write adds the batch in one pipeline: one ZADD per key, and a trim per
// key when Retention is set.
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	if len(batch) == 0 {
		return nil
	}
	var keys []string
	byKey := map[string][]redis.Z{}
	for _, smp := range batch {
		ms := sinkutil.Time(smp, s.opts.Now).UnixMilli()
		b, err := json.Marshal(member{smp.Device, smp.Property, smp.Namespace, smp.Value, smp.Type, ms})
		if err != nil {
			return fmt.Errorf("redis sink: encoding sample: %w", err)
		}
		k := s.key.Expand(smp)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], redis.Z{Score: float64(ms), Member: string(b)})
	}
	pipe := s.client.Pipeline()
	for _, k := range keys {
		pipe.ZAdd(ctx, k, byKey[k]...)
		if s.opts.Retention > 0 {
			cutoff := s.opts.Now().Add(-s.opts.Retention).UnixMilli()
			pipe.ZRemRangeByScore(ctx, k, "-inf", "("+strconv.FormatInt(cutoff, 10))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis sink: writing %d samples to %s: %w", len(batch), s.addr, err)
	}
	return nil
}

// Close closes the pool.
func (s *Sink) Close() error { return s.client.Close() }
