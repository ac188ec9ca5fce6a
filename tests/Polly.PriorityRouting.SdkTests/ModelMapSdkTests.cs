using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using Azure.AI.OpenAI;
using OpenAI;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// One logical model, differently named deployments (<see cref="PriorityBackend.Models"/>): the SDKs ask for the
/// logical name, each fake backend checks the name it receives.
/// </summary>
public sealed class ModelMapSdkTests : FakeBackendsTestBase
{
    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Fact]
    public async Task Azure_sdk_asks_for_gpt_4o_and_each_backend_receives_its_own_deployment_in_the_path()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(Route((A, 1, [("gpt-4o", "gpt-4o-ptu")]), (B, 2, [("gpt-4o", "gpt-4o")])));

        ChatCompletion completion = await AzureChat(host, "gpt-4o").CompleteChatAsync(Messages);

        completion.Content.Single().Text.Should().Be("Hello from b.");
        (A.Hits, B.Hits).Should().Be((1, 1));
        var (atA, atB) = (A.Received.Single().Request, B.Served.Single());
        (atA.Path, atA.Query).Should().Be(("/openai/deployments/gpt-4o-ptu/chat/completions", "?api-version=2024-10-21"));
        (atB.Path, atB.Query).Should().Be(("/openai/deployments/gpt-4o/chat/completions", "?api-version=2024-10-21"));
        atA.Body.Should().Be(atB.Body, "on a deployment path the body is left alone");
        atA.Body.Should().Contain("\"model\":\"gpt-4o\"", "the Azure SDK also names the deployment in the body, which Azure ignores on a deployment path");
    }

    [Fact]
    public async Task OpenAI_sdk_v1_style_has_the_body_model_rewritten_and_every_other_byte_unchanged()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(Route((A, 1, [("gpt-4o", "gpt-4o-ptu")]), (B, 2, [("gpt-4o", "gpt-4o")])));
        var options = new ChatCompletionOptions { Temperature = 0.25f, MaxOutputTokenCount = 64, EndUserId = "user-\u00e9" };

        ChatCompletion completion = await OpenAIChat(host, "gpt-4o", "http://placeholder/openai/v1").CompleteChatAsync(Messages, options);

        completion.Content.Single().Text.Should().Be("Hello from b.");
        var (atA, atB) = (A.Received.Single().Request, B.Served.Single());
        (atA.Path, atB.Path).Should().Be(("/openai/v1/chat/completions", "/openai/v1/chat/completions"));
        atB.Body.Should().Contain("\"model\":\"gpt-4o\"", "B names the model as the SDK does: its body is the SDK's, untouched");
        atA.Body.Should().Be(atB.Body.Replace("\"model\":\"gpt-4o\"", "\"model\":\"gpt-4o-ptu\"", StringComparison.Ordinal));
        Encoding.UTF8.GetByteCount(atA.Body).Should().Be(Encoding.UTF8.GetByteCount(atB.Body) + "-ptu".Length);
    }

    [Fact]
    public async Task O3_served_only_by_b_and_c_never_goes_to_a_even_when_both_are_throttled()
    {
        B.ThrottleFor(TimeSpan.FromSeconds(20));
        C.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(
            Route((A, 1, [("gpt-4o", "gpt-4o-ptu")]), (B, 2, [("o3", "o3")]), (C, 2, [("o3", "o3-2025-04-16")])),
            outerRetry: false);
        var chat = OpenAIChat(host, "o3", "http://placeholder/v1", sdkRetries: 0);

        var error = (await FluentActions.Awaiting(() => chat.CompleteChatAsync(Messages)).Should().ThrowAsync<ClientResultException>()).Which;
        var again = (await FluentActions.Awaiting(() => chat.CompleteChatAsync(Messages)).Should().ThrowAsync<ClientResultException>()).Which;

        (A.Hits, B.Hits, C.Hits).Should().Be((0, 1, 1), "A is in rotation, but it does not serve o3; the second call is answered without calling anyone");
        B.Received.Single().Request.Body.Should().Contain("\"model\":\"o3\"");
        C.Received.Single().Request.Body.Should().Contain("\"model\":\"o3-2025-04-16\"");
        foreach (var exhausted in new[] { error, again })
        {
            exhausted.Status.Should().Be(429);
            var response = exhausted.GetRawResponse()!;
            response.Headers.TryGetValue("x-priority-routing-exhausted", out var marker).Should().BeTrue();
            marker.Should().Be("true");
            response.Headers.TryGetValue("retry-after", out var retryAfter).Should().BeTrue();
            int.Parse(retryAfter!, System.Globalization.CultureInfo.InvariantCulture).Should().BeInRange(10, 20, "the soonest of B and C (B: 20 s), not A (free now)");
        }
    }

    [Fact]
    public async Task A_name_nobody_serves_is_answered_404_and_no_backend_is_called()
    {
        using var host = new SdkClientHost(Route((A, 1, [("gpt-4o", "gpt-4o-ptu")]), (B, 2, [("gpt-4o", "gpt-4o"), ("o3", "o3")])));

        var openAI = (await FluentActions.Awaiting(() => OpenAIChat(host, "gpt-5", "http://placeholder/v1").CompleteChatAsync(Messages))
            .Should().ThrowAsync<ClientResultException>()).Which;
        var azure = (await FluentActions.Awaiting(() => AzureChat(host, "gpt-5").CompleteChatAsync(Messages))
            .Should().ThrowAsync<ClientResultException>()).Which;

        foreach (var error in new[] { openAI, azure })
        {
            error.Status.Should().Be(404);
            error.GetRawResponse()!.Content.ToString().Should().Be(
                "{\"error\":{\"message\":\"The model 'gpt-5' is not served by any backend. Served models: 'gpt-4o', 'o3'.\"," +
                "\"type\":\"invalid_request_error\",\"param\":\"model\",\"code\":\"model_not_found\"}}");
        }

        openAI.Message.Should().Contain("model_not_found");
        (A.Hits, B.Hits, C.Hits).Should().Be((0, 0, 0));
    }

    [Fact]
    public async Task A_streamed_chat_goes_through_mapped_names_on_both_backends()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.Reply = "Streaming through mapped names.";
        using var host = new SdkClientHost(Route((A, 1, [("gpt-4o", "gpt-4o-ptu")]), (B, 2, [("gpt-4o", "gpt-4o-2024-11-20")])));
        var text = new StringBuilder();
        var models = new HashSet<string>();

        await foreach (StreamingChatCompletionUpdate update in OpenAIChat(host, "gpt-4o", "http://placeholder/v1").CompleteChatStreamingAsync(Messages))
        {
            models.Add(update.Model);
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        text.ToString().Should().Be("Streaming through mapped names.");
        models.Should().Equal("gpt-4o-2024-11-20");
        A.Received.Single().Request.Body.Should().Contain("\"model\":\"gpt-4o-ptu\"").And.Contain("\"stream\":true");
        B.Served.Single().Body.Should().Be(A.Received.Single().Request.Body.Replace("gpt-4o-ptu", "gpt-4o-2024-11-20", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_throttle_of_one_deployment_leaves_the_other_deployment_on_the_same_backend_in_rotation()
    {
        A.ThrottleFromNextRequestFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(Route(
            (A, 1, [("gpt-4o", "gpt-4o-ptu"), ("o3", "o3")]),
            (B, 2, [("gpt-4o", "gpt-4o"), ("o3", "o3")])));

        await AzureChat(host, "gpt-4o").CompleteChatAsync(Messages);
        A.ThrottleFor(TimeSpan.Zero);                                   // the service frees A; the store still keeps A's gpt-4o-ptu out
        ChatCompletion o3 = await AzureChat(host, "o3").CompleteChatAsync(Messages);
        ChatCompletion gpt = await AzureChat(host, "gpt-4o").CompleteChatAsync(Messages);

        (o3.Content.Single().Text, gpt.Content.Single().Text).Should().Be(("Hello from a.", "Hello from b."));
        A.Received.Select(r => (r.Request.Path, r.Throttled)).Should().Equal(
            ("/openai/deployments/gpt-4o-ptu/chat/completions", true),
            ("/openai/deployments/o3/chat/completions", false));
        B.Received.Select(r => r.Request.Path).Should().Equal(
            "/openai/deployments/gpt-4o/chat/completions",
            "/openai/deployments/gpt-4o/chat/completions");
        host.Options.StateStore!.TryGetUnavailability(host.Options.Backends[0].GetStateKey("gpt-4o-ptu"), out _).Should().BeTrue();
        host.Options.StateStore.TryGetUnavailability(host.Options.Backends[0].GetStateKey(), out _).Should().BeFalse();
    }

    [Fact]
    public async Task Azure_sdk_asks_for_gpt_4o_and_a_throttled_ptu_falls_back_to_gpt_4o_mini_in_the_same_call()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        var options = Route((A, 1, [("gpt-4o", "gpt-4o-ptu")]), (B, 2, [("gpt-4o-mini", "mini-deploy")]));
        options.ModelFallbacks["gpt-4o"] = ["gpt-4o-mini"];
        using var host = new SdkClientHost(options);

        var result = await AzureChat(host, "gpt-4o").CompleteChatAsync(Messages);

        result.Value.Content.Single().Text.Should().Be("Hello from b.");
        result.GetRawResponse().Headers.TryGetValue("x-priority-routing-model", out var served).Should().BeTrue();
        served.Should().Be("gpt-4o-mini");
        (A.Received.Single().Request.Path, B.Served.Single().Path).Should().Be(
            ("/openai/deployments/gpt-4o-ptu/chat/completions", "/openai/deployments/mini-deploy/chat/completions"));
    }

    private static PriorityRoutingStrategyOptions Route(params (FakeOpenAIBackend Backend, int Priority, (string Logical, string Own)[] Models)[] backends)
    {
        var options = new PriorityRoutingStrategyOptions();
        foreach (var (backend, priority, models) in backends)
        {
            var routed = new PriorityBackend { Name = backend.Name, BaseAddress = backend.Address, Priority = priority };
            foreach (var (logical, own) in models)
            {
                routed.Models[logical] = own;
            }

            options.Backends.Add(routed);
        }

        return options;
    }

    private static ChatClient AzureChat(SdkClientHost host, string model)
        => new AzureOpenAIClient(
                new Uri("http://placeholder/"),
                new ApiKeyCredential("placeholder"),
                new AzureOpenAIClientOptions(AzureOpenAIClientOptions.ServiceVersion.V2024_10_21) { Transport = host.Transport, RetryPolicy = new ClientRetryPolicy(0) })
            .GetChatClient(model);

    private static ChatClient OpenAIChat(SdkClientHost host, string model, string endpoint, int? sdkRetries = null)
    {
        var options = new OpenAIClientOptions { Transport = host.Transport, Endpoint = new Uri(endpoint) };
        if (sdkRetries is not null)
        {
            options.RetryPolicy = new ClientRetryPolicy(sdkRetries.Value);
        }

        return new ChatClient(model, new ApiKeyCredential("sk-placeholder"), options);
    }
}
