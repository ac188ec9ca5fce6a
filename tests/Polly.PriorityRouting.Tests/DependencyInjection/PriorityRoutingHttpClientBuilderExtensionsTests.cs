using System.Net;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.DependencyInjection;

public class PriorityRoutingHttpClientBuilderExtensionsTests
{
    private const string IssueJson = """
        {
          "PriorityRouting": {
            "Routing": {
              "Backends": [
                { "Name": "ptu",        "BaseAddress": "https://ptu.example.com/",  "Priority": 1, "Headers": { "api-key": "k1" } },
                { "Name": "paygo-east", "BaseAddress": "https://east.example.com/", "Priority": 2, "Weight": 2 }
              ],
              "DefaultCooldown": "00:00:10"
            },
            "Retry": { "MaxRetryAttempts": 3 },
            "TotalRequestTimeout": { "Timeout": "00:02:00" }
          }
        }
        """;

    [Fact]
    public void The_configuration_shape_of_the_issue_binds_as_is()
    {
        using var provider = Services(Json(IssueJson), out var name, out _);

        var options = provider.GetRequiredService<IOptionsMonitor<PriorityRoutingHandlerOptions>>().Get(name);

        name.Should().Be("aoai-priority-routing");
        options.Routing.Backends.Select(b => (b.Name, b.BaseAddress!.AbsoluteUri, b.Priority, b.Weight)).Should().Equal(
            ("ptu", "https://ptu.example.com/", 1, 1),
            ("paygo-east", "https://east.example.com/", 2, 2));
        options.Routing.Backends[0].Headers["api-key"].Should().Be("k1");
        options.Routing.Backends[0].Headers["API-KEY"].Should().Be("k1", "header names are case-insensitive");
        options.Routing.DefaultCooldown.Should().Be(TimeSpan.FromSeconds(10));
        options.Retry.MaxRetryAttempts.Should().Be(3);
        options.Retry.ShouldRetryAfterHeader.Should().BeTrue();
        options.TotalRequestTimeout.Timeout.Should().Be(TimeSpan.FromMinutes(2));
        options.AttemptTimeout.Timeout.Should().Be(TimeSpan.FromSeconds(100));
    }

    [Theory]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" }, { "BaseAddress": "not a uri" } ] } }""",
        "Routing.Backends[1].BaseAddress must be an absolute URI, but was relative.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/", "Weight": 0 } ] } }""",
        "Routing.Backends[0].Weight must be between 1 and 1000, but was 0.")]
    [InlineData("""{ "Routing": { "Backends": [] } }""",
        "Routing.Backends must contain at least one backend.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ] }, "AttemptTimeout": { "Timeout": "00:06:00" } }""",
        "AttemptTimeout.Timeout (00:06:00) must not exceed TotalRequestTimeout.Timeout (00:05:00).")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "DefaultCooldown": "00:10:00" } }""",
        "Routing.DefaultCooldown (00:10:00) must not exceed Routing.MaxCooldown (00:05:00).")]
    public async Task Invalid_configuration_fails_at_host_start_naming_the_field(string json, string expected)
    {
        var act = () => StartHostAsync(json);

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of("aoai", expected));
    }

    [Fact]
    public async Task A_retry_option_out_of_range_is_reported_by_the_data_annotations()
    {
        var act = () => StartHostAsync("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ] }, "Retry": { "MaxRetryAttempts": 0 } }""");

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of(
            "aoai", "MaxRetryAttempts: The field aoai-priority-routing.Retry.MaxRetryAttempts must be between 1 and 2147483647."));
    }

    [Theory]
    // An unknown key: its full path, the nearest known key within two edits, and nothing else.
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/", "Prioirty": 2 } ] } }""",
        "Routing.Backends[0].Prioirty is not a known setting (did you mean Priority?).")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" }, { "BaseAddress": "https://b/", "Wieght": 2 } ] } }""",
        "Routing.Backends[1].Wieght is not a known setting (did you mean Weight?).")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "OutlierEjection": { "consecutivefailure": 3 } } }""",
        "Routing.OutlierEjection.consecutivefailure is not a known setting (did you mean ConsecutiveFailures?).")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ] }, "Retyr": { "MaxRetryAttempts": 3 } }""",
        "Retyr is not a known setting (did you mean Retry?).")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/", "Colour": "red" } ] } }""",
        "Routing.Backends[0].Colour is not a known setting.")]
    // A value that does not convert: what was expected and what was found.
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" }, { "BaseAddress": "https://b/", "Priority": "abc" } ] } }""",
        "Routing.Backends[1].Priority must be a whole number, but was 'abc'.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "DefaultCooldown": "ten seconds" } }""",
        "Routing.DefaultCooldown must be a time span such as 00:00:30, but was 'ten seconds'.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "ProactiveThrottling": "yes" } }""",
        "Routing.ProactiveThrottling must be true or false, but was 'yes'.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "MaxAttempts": "3.5" } }""",
        "Routing.MaxAttempts must be a whole number, but was '3.5'.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ] }, "Retry": { "BackoffType": "Fibonacci" } }""",
        "Retry.BackoffType must be one of Constant, Linear, Exponential, but was 'Fibonacci'.")]
    // The wrong shape: an object or an array where a value is expected, an array where an object is, and the reverse.
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/", "Priority": { "Value": 1 } } ] } }""",
        "Routing.Backends[0].Priority must be a whole number, but was an object.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": [ "https://a/", "https://b/" ] } ] } }""",
        "Routing.Backends[0].BaseAddress must be a URI, but was an array.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "OutlierEjection": [ { "Enabled": false } ] } }""",
        "Routing.OutlierEjection must be an object, but was an array.")]
    [InlineData("""{ "Routing": [ { "Backends": [ { "BaseAddress": "https://a/" } ] } ] }""",
        "Routing must be an object, but was an array.")]
    [InlineData("""{ "Routing": { "Backends": { "BaseAddress": "https://a/" } } }""",
        "Routing.Backends must be an array, but was an object.")]
    [InlineData("""{ "Routing": { "Backends": "https://a/" } }""",
        "Routing.Backends must be an array, but was a value.")]
    [InlineData("""{ "Routing": { "Backends": [ "https://a/" ] } }""",
        "Routing.Backends[0] must be an object, but was a value.")]
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/", "Headers": { "api-key": { "value": "k" } } } ] } }""",
        "Routing.Backends[0].Headers.api-key must be a string, but was an object.")]
    // What only code can set.
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/" } ], "StateStore": "redis" } }""",
        "Routing.StateStore cannot be set from configuration; set it in code.")]
    // Several errors: each one, in the order of the configuration's keys (alphabetical).
    [InlineData("""{ "Routing": { "Backends": [ { "BaseAddress": "https://a/", "Prioirty": 2, "Weight": "heavy" } ] } }""",
        "Routing.Backends[0].Prioirty is not a known setting (did you mean Priority?).; Routing.Backends[0].Weight must be a whole number, but was 'heavy'.")]
    public async Task A_configuration_that_does_not_bind_is_reported_alone_with_the_path_and_what_was_expected(string json, string expected)
    {
        var act = () => StartHostAsync(json);

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of("aoai", expected));
    }

    [Fact]
    public async Task A_misspelled_section_name_says_the_section_is_missing_and_names_the_client()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(IssueJson)));
        builder.Services.AddHttpClient("aoai").AddPriorityRoutingHandler(builder.Configuration.GetSection("PriorityRoutng"));
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(
            "HttpClient 'aoai': The configuration section 'PriorityRoutng' is missing or empty; it must hold the handler's options, at least Routing:Backends.");
    }

    [Fact]
    public async Task An_absent_section_is_fine_when_code_adds_the_backends()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddHttpClient("aoai").AddPriorityRoutingHandler(builder.Configuration.GetSection("PriorityRouting"))
            .Configure(o => o.Routing.Backends.Add(new PriorityBackend { BaseAddress = new Uri("https://a.example/") }));
        using var host = builder.Build();

        await host.StartAsync();
        await host.StopAsync();
    }

    [Fact]
    public async Task Every_validation_message_names_its_client()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddHttpClient("east").AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { BaseAddress = new Uri("https://a.example/"), Weight = 0 });
            o.Retry.MaxRetryAttempts = 0;
        });
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Failures.Should().Equal(
            "HttpClient 'east': MaxRetryAttempts: The field east-priority-routing.Retry.MaxRetryAttempts must be between 1 and 2147483647.",
            "HttpClient 'east': Routing.Backends[0].Weight must be between 1 and 1000, but was 0.");
    }

    [Fact]
    public async Task A_binding_error_hides_the_bearer_token_check_of_backends_that_did_not_bind()
    {
        var act = () => StartHostAsync(
            """{ "Routing": { "Backends": [ { "Name": "ptu", "BaseAddress": "https://a/", "Prioirty": 2 } ] } }""",
            handler => handler.AddBearerToken("ptu", _ => new ValueTask<string>("token")));

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Be(ClientMessages.Of(
            "aoai", "Routing.Backends[0].Prioirty is not a known setting (did you mean Priority?)."));
    }

    private static async Task StartHostAsync(string json, Action<IPriorityRoutingHandlerBuilder>? configure = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes("{\"PriorityRouting\":" + json + "}")));
        var handler = builder.Services.AddHttpClient("aoai").AddPriorityRoutingHandler(builder.Configuration.GetSection("PriorityRouting"));
        configure?.Invoke(handler);
        using var host = builder.Build();
        await host.StartAsync();
        await host.StopAsync();
    }

    [Fact]
    public async Task Requests_follow_the_configured_tiers_and_the_registered_store()
    {
        var store = new InMemoryBackendStateStore();
        var transport = new RecordingHandler().Respond("ptu.example.com", HttpStatusCode.TooManyRequests, ("Retry-After", "20"));
        using var provider = Services(Json(IssueJson), out _, out _, transport, services => services.AddSingleton<IBackendStateStore>(store));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.GetAsync("http://placeholder/openai/models");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        transport.Requests.Select(r => r.Uri.AbsoluteUri).Should().Equal("https://ptu.example.com/openai/models", "https://east.example.com/openai/models");
        transport.Requests.First().Headers["api-key"].Should().Be("k1");
        transport.Requests.Last().Headers.Should().NotContainKey("api-key");
        store.TryGetUnavailability(new("ptu@https://ptu.example.com"), out var state).Should().BeTrue();
        state.Reason.Should().Be(BackendUnavailableReason.Throttled);
    }

    [Fact]
    public async Task A_reload_replaces_the_backends_and_keeps_throttle_state()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PriorityRouting:Routing:Backends:0:Name"] = "a",
            ["PriorityRouting:Routing:Backends:0:BaseAddress"] = "https://a.example/",
            ["PriorityRouting:Routing:Backends:1:Name"] = "b",
            ["PriorityRouting:Routing:Backends:1:BaseAddress"] = "https://b.example/",
            ["PriorityRouting:Routing:Backends:1:Priority"] = "2",
        }).Build();
        var store = new InMemoryBackendStateStore();
        var transport = new RecordingHandler().Respond("a.example", HttpStatusCode.TooManyRequests, ("Retry-After", "60"));
        using var provider = Services(config, out _, out _, transport, services => services.AddSingleton<IBackendStateStore>(store));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        (await client.GetAsync("http://placeholder/")).Dispose();

        // b leaves, c arrives at priority 1; a keeps its throttle.
        config["PriorityRouting:Routing:Backends:1:Name"] = "c";
        config["PriorityRouting:Routing:Backends:1:BaseAddress"] = "https://c.example/";
        config["PriorityRouting:Routing:Backends:1:Priority"] = "1";
        config.Reload();
        (await client.GetAsync("http://placeholder/")).Dispose();

        transport.Hosts.Should().Equal("a.example", "b.example", "c.example");
        store.TryGetUnavailability(new("a@https://a.example"), out _).Should().BeTrue();
    }

    [Fact]
    public async Task Every_routing_option_reaches_the_pipeline()
    {
        var json = """
            {
              "PriorityRouting": {
                "Routing": {
                  "Backends": [
                    { "Name": "a", "BaseAddress": "https://a.example/" },
                    { "Name": "b", "BaseAddress": "https://b.example/", "Priority": 2 },
                    { "Name": "c", "BaseAddress": "https://c.example/", "Priority": 3 }
                  ],
                  "OutlierEjection": { "ConsecutiveFailures": 1 },
                  "ProactiveThrottling": false
                }
              }
            }
            """;
        var store = new InMemoryBackendStateStore();
        var transport = new RecordingHandler()
            .Respond("a.example", HttpStatusCode.InternalServerError)
            .Respond("b.example", HttpStatusCode.TooManyRequests, ("Retry-After", "30"))
            .Respond("c.example", HttpStatusCode.OK, ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "5s"));
        using var provider = Services(Json(json), out var name, out _, transport, services =>
        {
            services.AddSingleton<IBackendStateStore>(store);
            services.Configure<PriorityRoutingHandlerOptions>("aoai-priority-routing", o => o.Routing.ThrottlePartitionKey = ThrottlePartitions.AzureOpenAIDeployment);
        });

        using var response = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai")
            .GetAsync("http://placeholder/openai/deployments/gpt-4o/chat/completions");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        store.TryGetUnavailability(new("a@https://a.example"), out var a).Should().BeTrue();
        a.Reason.Should().Be(BackendUnavailableReason.Ejected, "OutlierEjection.ConsecutiveFailures = 1");
        store.TryGetUnavailability(new("b@https://b.example", "gpt-4o"), out _).Should().BeTrue("the throttle partition applies");
        store.TryGetUnavailability(new("b@https://b.example"), out _).Should().BeFalse();
        store.TryGetUnavailability(new("c@https://c.example"), out _).Should().BeFalse("ProactiveThrottling = false");
    }

    [Fact]
    public async Task Named_clients_keep_their_own_backends_and_share_the_store()
    {
        var store = new InMemoryBackendStateStore();
        var transport = new RecordingHandler().Respond("shared.example", HttpStatusCode.TooManyRequests, ("Retry-After", "60"));
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(store);
        services.AddHttpClient("one").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "shared", BaseAddress = new Uri("https://shared.example/") });
            o.Routing.Backends.Add(new PriorityBackend { Name = "one-only", BaseAddress = new Uri("https://one.example/"), Priority = 2 });
        });
        services.AddHttpClient("two").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
        {
            o.Routing.Backends.Add(new PriorityBackend { Name = "shared", BaseAddress = new Uri("https://shared.example/") });
            o.Routing.Backends.Add(new PriorityBackend { Name = "two-only", BaseAddress = new Uri("https://two.example/"), Priority = 2 });
        });
        using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<IHttpClientFactory>();

        (await factory.CreateClient("one").GetAsync("http://placeholder/")).Dispose();
        (await factory.CreateClient("two").GetAsync("http://placeholder/")).Dispose();

        transport.Hosts.Should().Equal("shared.example", "one.example", "two.example");
    }

    [Fact]
    public async Task Bearer_tokens_are_fetched_per_attempt_for_their_backend_only()
    {
        var calls = 0;
        var transport = new RecordingHandler().Respond("a.example", HttpStatusCode.TooManyRequests, ("Retry-After", "0"));
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport)
            .AddPriorityRoutingHandler(o =>
            {
                o.Routing.StateStore = new InMemoryBackendStateStore();
                o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a.example/") });
                o.Routing.Backends.Add(new PriorityBackend { Name = "b", BaseAddress = new Uri("https://b.example/"), Priority = 2 });
            })
            .AddBearerToken("a", _ => new ValueTask<string>("token-" + Interlocked.Increment(ref calls)));
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var request = new HttpRequestMessage(HttpMethod.Get, "http://placeholder/");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "caller-token");
        (await client.SendAsync(request)).Dispose();
        (await client.GetAsync("http://placeholder/")).Dispose();

        transport.Requests.Select(r => (r.Host, r.Headers.GetValueOrDefault("Authorization"))).Should().Equal(
            ("a.example", "Bearer token-1"),
            ("b.example", "Bearer caller-token"),
            ("a.example", "Bearer token-2"),
            ("b.example", null));
    }

    [Fact]
    public async Task A_bearer_token_for_an_unknown_backend_fails_validation()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(o => o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a/") }))
            .AddBearerToken("typo", _ => new ValueTask<string>("t"));
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should()
            .Contain("Routing.Backends has no backend named 'typo' for the bearer token source.");
    }

    [Fact]
    public async Task Without_a_registered_store_the_shared_store_is_used_and_no_retry_outlives_the_total_timeout()
    {
        var name = "dflt-" + Guid.NewGuid().ToString("N");
        var transport = new RecordingHandler().Respond("a.example", HttpStatusCode.TooManyRequests, ("Retry-After", "600"));
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
            o.Routing.Backends.Add(new PriorityBackend { Name = name, BaseAddress = new Uri("https://a.example/") }));
        using var provider = services.BuildServiceProvider();
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();

        using var response = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").GetAsync("http://placeholder/");

        // 600 s is past the 2 min total timeout: the caller gets the honest answer now instead of a timeout later.
        stopwatch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        response.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        response.Headers.GetValues("Retry-After").Should().Equal(["300"], "the cooldown is clamped to MaxCooldown");
        transport.Hosts.Should().Equal("a.example");
        InMemoryBackendStateStore.Shared.TryGetUnavailability(new($"{name}@https://a.example"), out _).Should().BeTrue();
        InMemoryBackendStateStore.Shared.Reset(new($"{name}@https://a.example"));
    }

    [Fact]
    public void The_time_provider_from_di_drives_cooldowns()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryBackendStateStore();
        var transport = new RecordingHandler().Respond("ptu.example.com", HttpStatusCode.TooManyRequests, ("Retry-After", "20"));
        using var provider = Services(Json(IssueJson), out _, out _, transport, services =>
        {
            services.AddSingleton<IBackendStateStore>(store);
            services.AddSingleton<TimeProvider>(time);
        });

        provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").Send(new HttpRequestMessage(HttpMethod.Get, "http://placeholder/")).Dispose();

        store.TryGetUnavailability(new("ptu@https://ptu.example.com"), out var state).Should().BeTrue();
        state.Until.Should().Be(time.GetUtcNow().AddSeconds(20));
    }

    [Fact]
    public async Task Credentials_registered_for_every_client_reach_their_backend()
    {
        var transport = new RecordingHandler().Respond("ptu.example.com", HttpStatusCode.TooManyRequests);
        var services = new ServiceCollection();
        services.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
        {
            o.Routing.StateStore = new InMemoryBackendStateStore();
            o.Routing.Backends.Add(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("https://ptu.example.com/"), Headers = { ["api-key"] = "k1" } });
            o.Routing.Backends.Add(new PriorityBackend { Name = "east", BaseAddress = new Uri("https://east.example.com/"), Priority = 2, Headers = { ["api-key"] = "k2" } });
        }));
        using var provider = services.BuildServiceProvider();

        (await provider.GetRequiredService<IHttpClientFactory>().CreateClient("any").GetAsync("http://placeholder/")).Dispose();

        transport.Requests.Select(r => (r.Host, r.Headers.GetValueOrDefault("api-key"))).Should().Equal(
            ("ptu.example.com", "k1"), ("east.example.com", "k2"));
        provider.GetRequiredService<PriorityRoutingSnapshotProvider>().GetSnapshot("any").Backends
            .Select(b => (b.Name, b.Reason)).Should().Equal(("ptu", BackendUnavailableReason.Throttled), ("east", (BackendUnavailableReason?)null));
    }

    [Fact]
    public void The_handlers_retry_keeps_every_configured_retry_option()
    {
        var source = new Microsoft.Extensions.Http.Resilience.HttpRetryStrategyOptions
        {
            Randomizer = () => 0.25,
            MaxRetryAttempts = 7,
            UseJitter = true,
            Name = "my-retry",
            OnRetry = _ => default,
            MaxDelay = TimeSpan.FromSeconds(9),
        };

        var copy = PriorityRoutingHandlerPipeline.CapByDeadline(source, TimeProvider.System);

        var replaced = new[] { "ShouldHandle", "DelayGenerator", "ShouldRetryAfterHeader" };
        foreach (var property in typeof(Microsoft.Extensions.Http.Resilience.HttpRetryStrategyOptions).GetProperties().Where(p => p.CanRead && p.CanWrite))
        {
            if (!replaced.Contains(property.Name))
            {
                property.GetValue(copy).Should().Be(property.GetValue(source), $"{property.Name} must survive the copy");
            }
        }

        copy.Randomizer.Should().BeSameAs(source.Randomizer);
    }

    private static IConfiguration Json(string json)
        => new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();

    private static ServiceProvider Services(
        IConfiguration configuration,
        out string optionsName,
        out IPriorityRoutingHandlerBuilder handler,
        HttpMessageHandler? transport = null,
        Action<IServiceCollection>? configure = null)
    {
        var services = new ServiceCollection();
        configure?.Invoke(services);
        var client = services.AddHttpClient("aoai");
        if (transport is not null)
        {
            client.ConfigurePrimaryHttpMessageHandler(() => transport);
        }

        handler = client.AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"));
        optionsName = handler.PipelineName;
        return services.BuildServiceProvider();
    }
}
