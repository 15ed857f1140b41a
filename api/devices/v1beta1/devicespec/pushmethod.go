package devicespec

// PushMethod says where a property's readings go besides the cloud. Every
// sink set receives every reading; the mapper reads the device once per
// collectCycle and fans the sample out. Credentials never appear here: the
// mapper takes them from its environment (see docs/mapper-sinks.md).
type PushMethod struct {
	// +optional
	HTTP *PushMethodHTTP `json:"http,omitempty"`
	// +optional
	MQTT *PushMethodMQTT `json:"mqtt,omitempty"`
	// +optional
	OTEL *PushMethodOTEL `json:"otel,omitempty"`
	// DBMethod writes readings to a database.
	// +optional
	DBMethod *DBMethodConfig `json:"dbMethod,omitempty"`
	// AnomalyDetection configures an anomaly-detection service, free-form.
	// +optional
	AnomalyDetection *CustomizedValue `json:"anomalyDetection,omitempty"`
}

// PushMethodHTTP posts readings to http://hostName:port/requestPath.
type PushMethodHTTP struct {
	// +optional
	HostName string `json:"hostName,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	Port int64 `json:"port,omitempty"`
	// +optional
	RequestPath string `json:"requestPath,omitempty"`
	// Timeout of a request in seconds; 0 means the mapper's default.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Timeout int64 `json:"timeout,omitempty"`
}

// PushMethodMQTT publishes readings to an MQTT broker.
type PushMethodMQTT struct {
	// Address of the broker, for example mqtt://127.0.0.1:1883.
	// +optional
	Address string `json:"address,omitempty"`
	// +optional
	Topic string `json:"topic,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2
	QoS int32 `json:"qos,omitempty"`
	// +optional
	Retained bool `json:"retained,omitempty"`
}

// PushMethodOTEL exports readings as OpenTelemetry metrics.
type PushMethodOTEL struct {
	// EndpointURL of the OTLP receiver, for example
	// https://localhost:4318/v1/metrics.
	// +optional
	EndpointURL string `json:"endpointURL,omitempty"`
}

// DBMethodConfig selects a database. The JSON names are upstream's,
// capitals included (TDEngine, Kwdb).
type DBMethodConfig struct {
	// +optional
	Influxdb2 *DBMethodInfluxdb2 `json:"influxdb2,omitempty"`
	// +optional
	Redis *DBMethodRedis `json:"redis,omitempty"`
	// +optional
	TDEngine *DBMethodTDEngine `json:"TDEngine,omitempty"`
	// +optional
	Mysql *DBMethodMySQL `json:"mysql,omitempty"`
	// Kwdb (KaiwuDB) is accepted for upstream compatibility; Verge's mapper
	// SDK has no KaiwuDB sink.
	// +optional
	Kwdb *DBMethodKWDB `json:"Kwdb,omitempty"`
}

// DBMethodInfluxdb2 writes readings to InfluxDB 2.
type DBMethodInfluxdb2 struct {
	// +optional
	Influxdb2ClientConfig *Influxdb2ClientConfig `json:"influxdb2ClientConfig,omitempty"`
	// +optional
	Influxdb2DataConfig *Influxdb2DataConfig `json:"influxdb2DataConfig,omitempty"`
}

// Influxdb2ClientConfig says which InfluxDB to write to.
type Influxdb2ClientConfig struct {
	// +optional
	URL string `json:"url,omitempty"`
	// +optional
	Org string `json:"org,omitempty"`
	// +optional
	Bucket string `json:"bucket,omitempty"`
}

// Influxdb2DataConfig says how readings become InfluxDB points.
type Influxdb2DataConfig struct {
	// +optional
	Measurement string `json:"measurement,omitempty"`
	// +optional
	Tag map[string]string `json:"tag,omitempty"`
	// +optional
	FieldKey string `json:"fieldKey,omitempty"`
}

// DBMethodRedis writes readings to Redis.
type DBMethodRedis struct {
	// +optional
	RedisClientConfig *RedisClientConfig `json:"redisClientConfig,omitempty"`
}

// RedisClientConfig says which Redis to write to.
type RedisClientConfig struct {
	// +optional
	Addr string `json:"addr,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	DB int32 `json:"db,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	Poolsize int32 `json:"poolsize,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinIdleConns int32 `json:"minIdleConns,omitempty"`
}

// DBMethodTDEngine writes readings to TDengine.
type DBMethodTDEngine struct {
	// +optional
	TDEngineClientConfig *TDEngineClientConfig `json:"TDEngineClientConfig,omitempty"`
}

// TDEngineClientConfig says which TDengine to write to.
type TDEngineClientConfig struct {
	// +optional
	Addr string `json:"addr,omitempty"`
	// +optional
	DBName string `json:"dbName,omitempty"`
}

// DBMethodMySQL writes readings to MySQL or MariaDB.
type DBMethodMySQL struct {
	// +optional
	MySQLClientConfig *MySQLClientConfig `json:"mysqlClientConfig,omitempty"`
}

// MySQLClientConfig says which MySQL database to write to.
type MySQLClientConfig struct {
	// Addr is host:port, for example localhost:3306.
	// +optional
	Addr string `json:"addr,omitempty"`
	// +optional
	Database string `json:"database,omitempty"`
	// +optional
	UserName string `json:"userName,omitempty"`
}

// DBMethodKWDB writes readings to KaiwuDB.
type DBMethodKWDB struct {
	// +optional
	KWDBClientConfig *KWDBClientConfig `json:"KWDBClientConfig,omitempty"`
}

// KWDBClientConfig says which KaiwuDB to write to.
type KWDBClientConfig struct {
	// +optional
	Addr string `json:"addr,omitempty"`
	// +optional
	DBName string `json:"dbName,omitempty"`
}
