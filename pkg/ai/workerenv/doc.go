// Package workerenv reads the environment the controllers give worker pods
// (Sedna's contract, plus Verge's additions) into typed, validated
// configurations, reporting every problem at once with the variable's name,
// its value and what is expected.
//
// Variables, per worker (defaults in brackets; "required" means no
// default):
//
//	all            WORKER_NAME (required), NAMESPACE, LC_SERVER [http://127.0.0.1:9100],
//	               MODEL_URL, DATA_PATH_PREFIX [/home/data]
//	JI edge        SERVICE_NAME (required), BIG_MODEL_IP (required), BIG_MODEL_PORT [5000],
//	               HEM_NAME [none: nothing is hard], HEM_PARAMETERS [[]], LC_PERIOD [30, seconds]
//	JI cloud       SERVICE_NAME (required), BIG_MODEL_BIND_IP [0.0.0.0], BIG_MODEL_BIND_PORT [5000]
//	FL trainer     JOB_NAME (required), AGG_IP (required), AGG_PORT [7363], AGG_PROTOCOL [ws],
//	               TRAIN_DATASET_URL (required), DATASET_NAME, MODEL_NAME, PRETRAINED_MODEL_URL,
//	               PARTICIPANTS_COUNT, TRANSMITTER [ws], AGGREGATION_ALGORITHM [FedAvg],
//	               AGGREGATION_PARAMETERS [[]]
//	FL aggregator  JOB_NAME (required), AGG_BIND_IP [0.0.0.0], AGG_BIND_PORT [7363],
//	               PARTICIPANTS_COUNT [1], MIN_CLIENTS_PER_ROUND [all], ROUND_TIMEOUT [60s, Go duration],
//	               STOP_ROUNDS, else Sedna's EXIT_ROUND or exit_round [3 when no target metric],
//	               STOP_METRIC, STOP_METRIC_OPERATOR, STOP_METRIC_VALUE (all three or none),
//	               AGGREGATION_ALGORITHM [FedAvg], AGGREGATION_PARAMETERS [[]],
//	               PRETRAINED_MODEL_URL, TRANSMITTER [ws]
//
// HEM_PARAMETERS and AGGREGATION_PARAMETERS are the JSON lists the
// controllers write: [{"key":"threshold_img","value":"0.9"}]. The
// algorithms named and their parameters are checked here, with the same
// rules the workers apply (packages hem and federated). TRANSMITTER=s3 is
// refused: this SDK moves weights over the aggregator's WebSocket.
//
// Loading takes a lookup function (os.LookupEnv in main), so nothing here
// reads the process environment by itself.
package workerenv
