// Package conformance is the test suite every graph driver must pass: the cases of the established
// tool's graphtest, the contract of pluginapi.Driver (errors, idempotence, hostile input), and,
// for drivers run as plugins, the protocol (error classes across the boundary, cut streams,
// cancellation, a plugin killed mid-call).
//
// A driver's test calls Run with a Config. Every case is a subtest with its own fresh graph root,
// run root and driver instance (its own plugin process when Config.Executable is set), so cases
// share nothing and any one can be run alone with -run 'Conformance/CaseName'.
//
// Cases: the established graphtest (CreateEmpty, CreateBase, CreateSnap, CreateFromTemplate,
// DeepLayerRead, DiffApply, Changes, SetQuota, Echo, ListLayers; graph.go), the contract
// (contract.go) and the protocol (protocol.go). BuildDriver builds an in-tree plugin for them.
//
// Vocabulary as in pluginapi: a layer ID names a layer; its parent is given at Create; Get
// "mounts" a layer and returns the path of its full contents; Put undoes Get.
package conformance
