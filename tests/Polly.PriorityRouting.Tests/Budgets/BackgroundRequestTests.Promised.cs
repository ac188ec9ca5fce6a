using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// Background admission leaving free, together, the headroom, the foreground demand expected until the reset and the
/// room promised to foreground callers sent back to the refill under way: each is its own, so all three add up.
/// </summary>
public partial class BackgroundRequestTests
{
    [Fact]
    public async Task A_background_request_leaves_free_the_headroom_the_expected_foreground_demand_and_the_room_promised_to_a_foreground_caller_sent_back()
    {
        using var h = Harness(o => { }, RoutingHarness.Backend("a", 1));
        var a = Windowed(h, "a");
        (await Send(h, "first", 1000)).Dispose();
        (await Send(h, "burst", 3000)).Dispose();

        // Late in the window: the foreground can spend one second at its peak (3,000 within one second) before the reset.
        Advance(h, TimeSpan.FromSeconds(9.5));
        (await Send(h, "bg", 1000, Background())).StatusCode.Should().Be(HttpStatusCode.OK, "6,000 left: 2,000 of them the headroom, 3,000 the foreground's last half second");
        (await Send(h, "more", 3000)).StatusCode.Should().Be(HttpStatusCode.OK, "a foreground request ignores both");
        using var sentBack = await Send(h, "late", 3000);
        sentBack.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "2,000 are left");
        sentBack.Headers.GetValues("retry-after-ms").Single().Should().Be("502", "promised 3,000 of the next refill");

        // Late in the next window, before the caller sent back comes: its room is still promised.
        Advance(h, Window);
        using var tooLarge = await Send(h, "bg", 2001, Background());
        using var fits = await Send(h, "bg", 2000, Background());
        using var comesBack = await Send(h, "late", 3000);
        using var burstAgain = await Send(h, "burst", 3000);

        tooLarge.StatusCode.Should().Be(HttpStatusCode.TooManyRequests, "10,000 less the 2,000 headroom, the 3,000 the foreground can spend in the last half second at its peak and the 3,000 promised leave 2,000");
        fits.StatusCode.Should().Be(HttpStatusCode.OK);
        comesBack.StatusCode.Should().Be(HttpStatusCode.OK, "the caller sent back finds the room it was promised");
        burstAgain.StatusCode.Should().Be(HttpStatusCode.OK, "the foreground burst finds the room it was expected to spend");
        Callers(h).Should().Equal("first", "burst", "bg", "more", "bg", "late", "burst");
        a.Throttled.Should().Be(0);
    }
}
