using BenchmarkDotNet.Running;

// Pass BenchmarkDotNet's own arguments through, e.g. `--filter * --job short`.
BenchmarkSwitcher.FromAssembly(typeof(Polly.PriorityRouting.Benchmarks.RoutingBenchmarks).Assembly).Run(args);
