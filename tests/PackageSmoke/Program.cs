using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting;
using PackageSmoke;

// One failover and one exhausted answer through the packaged library, the way the README registers it: no BaseAddress,
// relative request URIs, real sockets on 127.0.0.1. Prints one line per check and exits non-zero if any failed.
var passed = 0;
var failed = 0;
void Check(string name, bool ok, string detail)
{
    Console.WriteLine($"{(ok ? "PASS" : "FAIL")} {name}: {detail}");
    if (ok)
    {
        passed++;
    }
    else
    {
        failed++;
    }
}

using var a = new LoopbackBackend("a") { Answer = (429, "Retry-After: 30\r\n") };
using var b = new LoopbackBackend("b");
var services = new ServiceCollection();
services.AddHttpClient("aoai").AddPriorityRoutingHandler(options =>
{
    options.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = a.Address, Priority = 1 });
    options.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = b.Address, Priority = 2 });
    options.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(10);   // a 20 s Retry-After is then answered, not waited for
    options.AttemptTimeout.Timeout = TimeSpan.FromSeconds(5);
});
using var provider = services.BuildServiceProvider();
var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

using (var response = await client.PostAsync("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", new StringContent("{}")))
{
    var body = await response.Content.ReadAsStringAsync();
    Check("failover", response.StatusCode == HttpStatusCode.OK && body == "hello from b" && a.Hits == 1 && b.Hits == 1
        && b.RequestLines.Single() == "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 HTTP/1.1",
        $"{(int)response.StatusCode} '{body}', a {a.Hits} hit(s), b {b.Hits} hit(s)");
}

b.Answer = (429, "Retry-After: 20\r\n");
using (var response = await client.GetAsync("/openai/models"))
{
    var body = await response.Content.ReadAsStringAsync();
    var retryAfter = response.Headers.RetryAfter?.Delta?.TotalSeconds;
    Check("exhausted", response.StatusCode == HttpStatusCode.TooManyRequests
        && response.Headers.TryGetValues("x-priority-routing-exhausted", out _)
        && retryAfter is >= 19 and <= 20
        && body.StartsWith("{\"error\":{\"message\":\"All backends are throttled.", StringComparison.Ordinal)
        && body.Contains("\"code\":\"all_backends_throttled\"", StringComparison.Ordinal)
        && a.Hits == 1 && b.Hits == 2,
        $"{(int)response.StatusCode}, Retry-After {retryAfter} s, a {a.Hits} hit(s), b {b.Hits} hit(s), {body}");
}

#if NET10_0_OR_GREATER
await AzureClientCheck.RunAsync(Check);
#endif

// A .NET 8 app gets the 8.0 Microsoft.Extensions packages, a .NET 10 app the 10.x ones: nothing lifted.
var extensions = AppDomain.CurrentDomain.GetAssemblies().Select(x => x.GetName())
    .Where(n => n.Name!.StartsWith("Microsoft.Extensions.", StringComparison.Ordinal))
    .Select(n => $"{n.Name} {n.Version}").Order(StringComparer.Ordinal).ToList();
Check("dependencies", extensions.Count > 0 && extensions.All(e => e.Split(' ')[1].StartsWith($"{Environment.Version.Major}.", StringComparison.Ordinal)),
    $"{extensions.Count} Microsoft.Extensions assemblies, all {Environment.Version.Major}.x: {string.Join(", ", extensions.Where(e => e.Contains("Resilience", StringComparison.Ordinal)))}");

Console.WriteLine($"smoke ({System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}): {passed} passed, {failed} failed");
return failed == 0 ? 0 : 1;
