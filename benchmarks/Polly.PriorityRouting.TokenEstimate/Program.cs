using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using Polly.PriorityRouting;
using Polly.PriorityRouting.TokenEstimate;

// Usage: dotnet run -c Release --project benchmarks/Polly.PriorityRouting.TokenEstimate [-- <repository root>]
// Compares the strategy's cheap estimate (UTF-8 bytes / 4) with the o200k_base (gpt-4o, gpt-4.1, o-series) and
// cl100k_base (gpt-4, gpt-3.5) tokenizers, for accuracy and cost per request, on chat bodies built from real text.
var root = args.Length > 0 ? args[0] : FindRoot();
var o200k = TiktokenTokenizer.CreateForModel("gpt-4o");
var cl100k = TiktokenTokenizer.CreateForModel("gpt-4");
var payloads = Payloads.Load(root).ToList();

Console.WriteLine("| text | prompts | o200k tokens | estimate / o200k (mean, min–max) | estimate / cl100k (mean) | share under-estimated vs o200k |");
Console.WriteLine("|---|---:|---:|---|---:|---:|");
foreach (var group in payloads.GroupBy(p => p.Kind))
{
    var ratios = new List<double>();
    var ratiosCl = new List<double>();
    long tokens = 0;
    foreach (var (_, text) in group)
    {
        var body = Body(text);
        var estimate = OpenAIRequestCost.Estimate(body) - 256; // the prompt part: the body's output cap is 256
        var exact = o200k.CountTokens(text) + 4;               // + "user" and the message framing, ~4 tokens
        var exactCl = cl100k.CountTokens(text) + 4;
        tokens += exact;
        ratios.Add((double)estimate / exact);
        ratiosCl.Add((double)estimate / exactCl);
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {group.Key} | {ratios.Count} | {tokens} | {ratios.Average():0.00} ({ratios.Min():0.00}–{ratios.Max():0.00}) | {ratiosCl.Average():0.00} | {ratios.Count(r => r < 1) * 100.0 / ratios.Count:0}% |"));
}

// Cost per request: the whole estimate on a ~6 KB chat body, against counting its prompt with o200k.
var sample = Body(payloads.First().Text);
var sampleText = payloads.First().Text;
const int Iterations = 2_000;
Measure("estimate (JSON walk, bytes / 4)", () => OpenAIRequestCost.Estimate(sample), Iterations);
Measure("o200k CountTokens of the prompt", () => o200k.CountTokens(sampleText), Iterations);
Measure("JSON parse + o200k CountTokens", () => CountWithTokenizer(sample, o200k), Iterations);
return 0;

static byte[] Body(string prompt)
    => Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { model = "gpt-4o", messages = new[] { new { role = "user", content = prompt } }, max_tokens = 256 }));

static long CountWithTokenizer(byte[] body, Tokenizer tokenizer)
{
    using var json = JsonDocument.Parse(body);
    long count = 0;
    foreach (var message in json.RootElement.GetProperty("messages").EnumerateArray())
    {
        count += tokenizer.CountTokens(message.GetProperty("content").GetString()!) + 4;
    }

    return count + json.RootElement.GetProperty("max_tokens").GetInt64();
}

static void Measure(string what, Func<long> action, int iterations)
{
    for (var i = 0; i < 200; i++)
    {
        action();
    }

    var allocated = GC.GetAllocatedBytesForCurrentThread();
    var stopwatch = Stopwatch.StartNew();
    for (var i = 0; i < iterations; i++)
    {
        action();
    }

    stopwatch.Stop();
    var bytes = (GC.GetAllocatedBytesForCurrentThread() - allocated) / iterations;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: {stopwatch.Elapsed.TotalMicroseconds / iterations:0.0} µs, {bytes} B allocated per request"));
}

static string FindRoot()
{
    var directory = new DirectoryInfo(AppContext.BaseDirectory);
    while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Polly.PriorityRouting.sln")))
    {
        directory = directory.Parent;
    }

    return directory?.FullName ?? Directory.GetCurrentDirectory();
}
