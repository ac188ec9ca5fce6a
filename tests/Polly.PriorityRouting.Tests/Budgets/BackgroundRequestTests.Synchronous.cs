using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>A synchronous send (<see cref="HttpClient.Send(HttpRequestMessage)"/>) meeting the background rules that make a caller wait.</summary>
public partial class BackgroundRequestTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_background_caller_held_back_by_the_foregrounds_peak_waits_for_the_second_it_leaves_whether_it_sends_synchronously_or_not(bool synchronous)
    {
        // The foreground spends 7,000 within one second (after 1,000 sent before any budget was known): a whole window
        // at that peak leaves nothing of the next refill; after a quiet window the peak halves to 3,500, whose one second
        // leaves 3,000 and the headroom: the window's last second, 29 s, within the 30 s the caller may wait.
        using var h = Harness(o => o.MaxQueueWait = TimeSpan.FromSeconds(30), RoutingHarness.Backend("a", 1));
        var a = Windowed(h, "a");
        (await Send(h, "first", 1000)).Dispose();
        (await Send(h, "burst", 7000)).Dispose();

        // A synchronous caller (HttpClient.Send) waits on its own thread.
        var background = synchronous
            ? Task.Run(() => h.Client.Send(Request("bg", 3000, Background())))
            : Send(h, "bg", 3000, Background());
        (await WaitsAgainAsync(h, background)).Should().BeTrue("the foreground's peak leaves no room before the last second of the third window");

        Advance(h, Window * 2);
        (await WaitsAgainAsync(h, background)).Should().BeTrue("at 20 s the halved peak still needs all but the window's last second");
        Advance(h, TimeSpan.FromSeconds(8));
        (await WaitsAgainAsync(h, background)).Should().BeTrue("28 s is not the last second yet");

        Advance(h, TimeSpan.FromSeconds(1));
        using var served = await background.WaitAsync(HangGuard);
        served.StatusCode.Should().Be(HttpStatusCode.OK, "at 29 s one second at the peak leaves 3,000 and the headroom");
        Callers(h).Should().Equal("first", "burst", "bg");
        a.Throttled.Should().Be(0);
    }
}
