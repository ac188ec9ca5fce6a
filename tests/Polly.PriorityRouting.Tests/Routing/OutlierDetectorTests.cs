namespace Polly.PriorityRouting.Tests.Routing;

public class OutlierDetectorTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private readonly OutlierDetector _detector = new();
    private readonly OutlierEjectionOptions _options = new();

    [Fact]
    public void Ejects_after_the_configured_failures_in_a_row()
    {
        for (var i = 0; i < 4; i++)
        {
            _detector.RecordFailure("a", Now, _options).Should().BeNull();
        }

        _detector.RecordFailure("a", Now, _options).Should().Be((TimeSpan.FromSeconds(30), 1));
    }

    [Fact]
    public void A_healthy_answer_resets_the_count()
    {
        for (var i = 0; i < 4; i++)
        {
            _detector.RecordFailure("a", Now, _options);
        }

        _detector.RecordHealthy("a");

        _detector.RecordFailure("a", Now, _options).Should().BeNull();
    }

    [Fact]
    public void Failed_probes_grow_the_ejection_up_to_the_maximum()
    {
        var now = Eject("a", Now);
        var durations = new List<TimeSpan>();
        for (var i = 0; i < 12; i++)
        {
            now += durations.Count == 0 ? TimeSpan.FromSeconds(30) : durations[^1];
            _detector.TryAdmit("a", now, out var isProbe).Should().BeTrue();
            isProbe.Should().BeTrue();
            durations.Add(_detector.RecordFailure("a", now, _options)!.Value.Duration);
        }

        durations.Select(d => d.TotalSeconds).Should().Equal(60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300);
    }

    [Fact]
    public void Ejections_decay_while_the_backend_is_healthy()
    {
        var now = Eject("a", Now);
        now += TimeSpan.FromSeconds(30);
        _detector.TryAdmit("a", now, out _);
        _detector.RecordFailure("a", now, _options)!.Value.Ejections.Should().Be(2);
        now += TimeSpan.FromSeconds(60);
        _detector.TryAdmit("a", now, out _);
        _detector.RecordHealthy("a");

        // Two base ejection times of health forgive both ejections.
        now += TimeSpan.FromSeconds(60);
        Eject("a", now).Should().Be(now);
        _detector.RecordFailure("a", now, _options).Should().BeNull("the count restarted after the ejection");
    }

    [Fact]
    public void Exactly_one_probe_goes_when_an_ejection_ends()
    {
        var now = Eject("a", Now);

        _detector.TryAdmit("a", now.AddSeconds(29), out var early).Should().BeTrue("the store keeps it out until then");
        early.Should().BeFalse();

        now = now.AddSeconds(30);
        _detector.TryAdmit("a", now, out var first).Should().BeTrue();
        first.Should().BeTrue();
        _detector.IsProbeInFlight("a").Should().BeTrue();
        _detector.TryAdmit("a", now, out var second).Should().BeFalse();
        second.Should().BeFalse();

        _detector.ReleaseProbe("a");
        _detector.TryAdmit("a", now, out var retry).Should().BeTrue();
        retry.Should().BeTrue();

        _detector.RecordHealthy("a");
        _detector.IsProbeInFlight("a").Should().BeFalse();
        _detector.TryAdmit("a", now, out var normal).Should().BeTrue();
        normal.Should().BeFalse();
    }

    [Fact]
    public void Unknown_backends_are_admitted_without_state()
    {
        _detector.TryAdmit("never-failed", Now, out var isProbe).Should().BeTrue();
        isProbe.Should().BeFalse();
        _detector.IsProbeInFlight("never-failed").Should().BeFalse();
    }

    [Fact]
    public void One_detector_per_store()
    {
        var store = new InMemoryBackendStateStore();

        OutlierDetector.For(store).Should().BeSameAs(OutlierDetector.For(store));
        OutlierDetector.For(store).Should().NotBeSameAs(OutlierDetector.For(new InMemoryBackendStateStore()));
    }

    private DateTimeOffset Eject(string name, DateTimeOffset now)
    {
        for (var i = 0; i < 5; i++)
        {
            _detector.RecordFailure(name, now, _options);
        }

        return now;
    }
}
