using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.DependencyInjection;

/// <summary>
/// <c>Routing:Affinity:*</c> bound from configuration through the one-line registration: the values reach the pins,
/// invalid ones stop the host at start naming the field, and a reload applies.
/// </summary>
public class AffinityConfigurationTests
{
    [Fact]
    public async Task The_configured_lifetimes_are_those_of_the_pins()
    {
        var config = Configuration(new()
        {
            ["PriorityRouting:Routing:Affinity:Enabled"] = "true",
            ["PriorityRouting:Routing:Affinity:ResponseLifetime"] = "2.00:00:00",
            ["PriorityRouting:Routing:Affinity:ResourceLifetime"] = "90.00:00:00",
            ["PriorityRouting:Routing:Affinity:StickyLifetime"] = "00:03:00",
        });
        var (provider, store) = Services(config);
        using var _ = provider;
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        await SendAsync(client, "/v1/responses", """{"model":"gpt-4o","input":"hi"}""");
        await SendAsync(client, "/v1/batches", """{"input_file_id":"file-in","endpoint":"/v1/responses"}""");
        await SendAsync(client, "/v1/chat/completions", """{"messages":[],"user":"u-1"}""");

        store.Pins.Should().Equal(
            ("resp_1", TimeSpan.FromDays(2)),
            ("batch_2", TimeSpan.FromDays(90)),
            ("~u-1", TimeSpan.FromMinutes(3)));
    }

    [Fact]
    public async Task Affinity_turned_off_in_configuration_never_reads_nor_writes_the_store()
    {
        var config = Configuration(new() { ["PriorityRouting:Routing:Affinity:Enabled"] = "false" });
        var (provider, store) = Services(config);
        using var _ = provider;
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        await SendAsync(client, "/v1/responses", """{"model":"gpt-4o","input":"hi","previous_response_id":"resp_0"}""");

        (store.Pins.Count, store.Lookups).Should().Be((0, 0));
    }

    [Fact]
    public async Task A_reload_applies_the_new_affinity_settings()
    {
        var config = Configuration(new() { ["PriorityRouting:Routing:Affinity:ResponseLifetime"] = "1.00:00:00" });
        var (provider, store) = Services(config);
        using var _ = provider;
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        await SendAsync(client, "/v1/responses", """{"input":"hi"}""");

        config["PriorityRouting:Routing:Affinity:ResponseLifetime"] = "3.00:00:00";
        config.Reload();
        await SendAsync(client, "/v1/responses", """{"input":"hi"}""");
        config["PriorityRouting:Routing:Affinity:Enabled"] = "false";
        config.Reload();
        await SendAsync(client, "/v1/responses", """{"input":"hi"}""");

        store.Pins.Should().Equal(("resp_1", TimeSpan.FromDays(1)), ("resp_2", TimeSpan.FromDays(3)));
    }

    [Fact]
    public async Task A_reload_keeps_the_soft_affinity_pins_of_the_default_store_on_a_transient_clock()
    {
        // A TimeProvider registered as transient: each pipeline build (the first, and every reload) gets its own
        // instance. Two backends of one tier; the randomizer picks a first, then always b, so only a pin brings the
        // user back to a.
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "a",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://a.example/",
            ["PriorityRouting:Routing:Backends:1:Name"] = "b",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = "https://b.example/",
            ["PriorityRouting:Routing:Affinity:StickyLifetime"] = "00:10:00",
        }).Build();
        var transport = new RecordingHandler();
        var picks = 0;
        var services = new ServiceCollection();
        services.AddTransient<TimeProvider>(_ => new Microsoft.Extensions.Time.Testing.FakeTimeProvider(RoutingHarness.Start));
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport)
            .AddPriorityRoutingHandler(config.GetSection("PriorityRouting"))
            .Configure(o => o.Routing.Randomizer = bound => Interlocked.Increment(ref picks) == 1 ? 0 : bound - 1);
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        await SendAsync(client, "/v1/chat/completions", """{"messages":[],"user":"u-1"}""");
        await SendAsync(client, "/v1/chat/completions", """{"messages":[],"user":"u-2"}""");
        config["PriorityRouting:Routing:Affinity:ResponseLifetime"] = "3.00:00:00";
        config.Reload();
        await SendAsync(client, "/v1/chat/completions", """{"messages":[],"user":"u-1"}""");

        transport.Hosts.Should().Equal(["a.example", "b.example", "a.example"], "the user's pin on a outlives the reload");
    }

    [Theory]
    [InlineData("""{ "ResponseLifetime": "00:00:00" }""",
        "Routing.Affinity.ResponseLifetime must be between 00:00:01 and 3650.00:00:00, but was 00:00:00.")]
    [InlineData("""{ "ResourceLifetime": "-1.00:00:00" }""",
        "Routing.Affinity.ResourceLifetime must be between 00:00:01 and 3650.00:00:00, but was -1.00:00:00.")]
    [InlineData("""{ "StickyLifetime": "2.00:00:00" }""",
        "Routing.Affinity.StickyLifetime must be between 00:00:01 and 1.00:00:00, but was 2.00:00:00.")]
    [InlineData("""{ "StickyLifetime": "ten minutes" }""",
        "Routing.Affinity.StickyLifetime must be a time span such as 00:00:30, but was 'ten minutes'.")]
    [InlineData("""{ "Enabled": "maybe" }""",
        "Routing.Affinity.Enabled must be true or false, but was 'maybe'.")]
    [InlineData("""{ "StickyLifetme": "00:05:00" }""",
        "Routing.Affinity.StickyLifetme is not a known setting (did you mean StickyLifetime?).")]
    [InlineData("""{ "Store": "redis" }""",
        "Routing.Affinity.Store cannot be set from configuration; set it in code.")]
    public async Task An_invalid_affinity_setting_fails_at_host_start_naming_the_field(string affinity, string expected)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(
            """{ "PriorityRouting": { "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "Affinity": """ + affinity + " } } }")));
        builder.Services.AddHttpClient("aoai").AddPriorityRoutingHandler(builder.Configuration.GetSection("PriorityRouting"));
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of("aoai", expected));
    }

    private static IConfigurationRoot Configuration(Dictionary<string, string?> affinity)
    {
        affinity["PriorityRouting:Routing:Backends:0:Name"] = "a";
        affinity["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://a.example/";
        return new ConfigurationBuilder().AddInMemoryCollection(affinity).Build();
    }

    private static (ServiceProvider Provider, RecordingAffinityStore Store) Services(IConfiguration configuration)
    {
        var created = 0;
        var transport = new RecordingHandler().Respond("a.example", request =>
        {
            var kind = request.RequestUri!.AbsolutePath.EndsWith("/batches", StringComparison.Ordinal) ? "batch" : "resp";
            return new HttpResponseMessage(HttpStatusCode.OK)
            {
                Content = new StringContent($$"""{"id":"{{kind}}_{{Interlocked.Increment(ref created)}}"}""", Encoding.UTF8, "application/json"),
            };
        });
        var store = new RecordingAffinityStore();
        var services = new ServiceCollection();
        services.AddSingleton<IAffinityStore>(store);
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport)
            .AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"));
        return (services.BuildServiceProvider(), store);
    }

    private static async Task SendAsync(HttpClient client, string path, string body)
    {
        using var response = await client.PostAsync("http://placeholder" + path, new StringContent(body, Encoding.UTF8, "application/json"));
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        _ = await response.Content.ReadAsStringAsync();
    }

    /// <summary>Records every pin with its lifetime (soft keys prefixed with <c>~</c>) and counts lookups.</summary>
    private sealed class RecordingAffinityStore : IAffinityStore
    {
        private readonly ConcurrentQueue<(string Key, TimeSpan TimeToLive)> _pins = new();
        private int _lookups;

        public IReadOnlyList<(string Key, TimeSpan TimeToLive)> Pins => [.. _pins];

        public int Lookups => Volatile.Read(ref _lookups);

        public ValueTask<string?> FindAsync(string id, CancellationToken cancellationToken) => Lookup();

        public ValueTask<string?> FindStickyAsync(string key, CancellationToken cancellationToken) => Lookup();

        public ValueTask PinAsync(string id, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
        {
            _pins.Enqueue((id, timeToLive));
            return default;
        }

        public ValueTask PinStickyAsync(string key, string backend, TimeSpan timeToLive, CancellationToken cancellationToken)
        {
            _pins.Enqueue(("~" + key, timeToLive));
            return default;
        }

        public ValueTask RemoveAsync(string id, CancellationToken cancellationToken) => default;

        private ValueTask<string?> Lookup()
        {
            Interlocked.Increment(ref _lookups);
            return new((string?)null);
        }
    }
}
