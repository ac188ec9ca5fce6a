using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

public class BearerTokenFailoverTests
{
    [Fact]
    public async Task A_backend_whose_token_source_fails_is_skipped_for_one_with_its_own_key()
    {
        // A token source that fails (an Entra ID outage on the PTU) must not fail every request while the pay-as-you-go
        // backend, with its own api-key, could serve it.
        var ptu = RoutingHarness.Backend("ptu", 1);
        ptu.BearerTokenProvider = _ => throw new InvalidOperationException("ManagedIdentityCredential authentication unavailable.");
        var paygo = RoutingHarness.Backend("paygo", 2);
        paygo.Headers["api-key"] = "key-paygo";
        using var h = new RoutingHarness(null, ptu, paygo);

        var send = () => h.Client.GetAsync("/openai/deployments/gpt-4o/chat/completions");

        using var response = (await send.Should().NotThrowAsync()).Subject;
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        h.Transport.Hosts.Should().Equal("paygo");
    }
}
