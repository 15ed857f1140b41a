// Package hem implements Sedna's hard-example-mining filters: given what the
// edge model produced for one sample, decide whether the sample is "hard"
// (worth sending to the cloud model).
//
// Names, parameters, defaults and formulas are Sedna's
// (lib/sedna/algorithms/hard_example_mining):
//
//	Threshold     threshold=0.5                  boxes: mean(score) < threshold
//	CrossEntropy  threshold_cross_entropy=0.5    probabilities p_1..p_K:
//	              1 + Σ p_i·ln p_i / ln K < threshold_cross_entropy
//	IBT           threshold_img=0.5,             boxes: #{score ≤ threshold_box} / N
//	              threshold_box=0.5                     ≥ 1 − threshold_img
//	Random        random_ratio=0.3               U[0,1) < random_ratio
//	CloudOnly     —                              always hard
//	EdgeOnly      —                              never hard
//
// Every parameter is a number in [0, 1]; anything else is a
// *ai.ParameterError from the constructor, as is a key the filter does not
// know (upstream ignores it). New builds a filter from the CRD form (name
// plus {key, value} strings), so the controller and the workers agree.
//
// Inputs Sedna answers "not hard" for without saying why (a score outside
// [0, 1], an empty or non-normalised probability vector, NaN) give false
// and an *InputError here, so the caller keeps the sample on the edge, as
// Sedna does, and can count the problem. Two cases Sedna crashes on are
// defined: p_i = 0 contributes 0 (the limit of p·ln p), and K = 1 means
// full confidence (normalised entropy 0), so never hard. No boxes at all is
// not an error: nothing was detected, and the sample is not hard.
//
// Filters are safe for concurrent use. All but Random are pure functions of
// their input; Random draws from the rand.Source it was given, under a
// lock, and Decide exposes its rule as a pure function.
package hem
