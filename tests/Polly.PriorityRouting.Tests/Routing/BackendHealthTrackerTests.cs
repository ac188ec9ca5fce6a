namespace Polly.PriorityRouting.Tests.Routing;

public class BackendHealthTrackerTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private readonly BackendHealthTracker _tracker = new();
    private readonly OutlierEjectionOptions _options = new();
    private readonly RoutedBackend _a = new(new PriorityBackend { Name = "a", BaseAddress = new Uri("http://a/") }, 0);

    [Fact]
    public void Ejects_after_the_configured_failures_in_a_row()
    {
        for (var i = 0; i < 4; i++)
        {
            Fail(Now).Should().BeNull();
        }

        Fail(Now).Should().Be((TimeSpan.FromSeconds(30), 1));
    }

    [Fact]
    public void A_healthy_answer_resets_the_count()
    {
        for (var i = 0; i < 4; i++)
        {
            Fail(Now);
        }

        _tracker.RecordHealthy(Admit(Now));

        Fail(Now).Should().BeNull();
    }

    [Fact]
    public void Failures_of_attempts_admitted_before_an_ejection_do_not_eject_it_again()
    {
        // 25 requests in flight at once, all answered 500: one episode, one ejection.
        var inFlight = Enumerable.Range(0, 25).Select(_ => Admit(Now)).ToArray();

        var ejections = inFlight.Select(lease => _tracker.RecordFailure(lease, Now, _options)).Where(e => e is not null).ToArray();

        ejections.Should().Equal((TimeSpan.FromSeconds(30), 1));
    }

    [Fact]
    public void Answers_of_attempts_admitted_before_an_ejection_do_not_end_it()
    {
        var early = Admit(Now);
        Eject(Now);

        _tracker.RecordHealthy(early);

        _tracker.TryAdmit(_a, Now.AddSeconds(30), _tracker.EjectionMark, out var probe).Should().BeTrue();
        probe.IsProbe.Should().BeTrue("the ejection still ends with a probe");
    }

    [Fact]
    public void Failed_probes_grow_the_ejection_up_to_the_maximum()
    {
        var now = Eject(Now);
        var durations = new List<TimeSpan>();
        for (var i = 0; i < 12; i++)
        {
            now += durations.Count == 0 ? TimeSpan.FromSeconds(30) : durations[^1];
            _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var probe).Should().BeTrue();
            probe.IsProbe.Should().BeTrue();
            durations.Add(_tracker.RecordFailure(probe, now, _options)!.Value.Duration);
        }

        durations.Select(d => d.TotalSeconds).Should().Equal(60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300);
    }

    [Fact]
    public void Ejections_decay_while_the_backend_is_healthy()
    {
        var now = Eject(Now);
        now += TimeSpan.FromSeconds(30);
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var probe);
        _tracker.RecordFailure(probe, now, _options)!.Value.Ejections.Should().Be(2);
        now += TimeSpan.FromSeconds(60);
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out probe);
        _tracker.RecordHealthy(probe);

        // Two base ejection times of health forgive both ejections.
        now += TimeSpan.FromSeconds(60);
        Eject(now).Should().Be(now);
        _tracker.RecordFailure(Admit(now), now, _options).Should().BeNull("the count restarted after the ejection");
    }

    [Fact]
    public void Exactly_one_probe_goes_when_an_ejection_ends_and_disposing_its_lease_frees_the_slot()
    {
        var now = Eject(Now);

        _tracker.TryAdmit(_a, now.AddSeconds(29), _tracker.EjectionMark, out var early).Should().BeTrue("the store keeps it out until then");
        early.IsProbe.Should().BeFalse();

        now = now.AddSeconds(30);
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var first).Should().BeTrue();
        first.IsProbe.Should().BeTrue();
        _tracker.IsProbeInFlight(_a).Should().BeTrue();
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out _).Should().BeFalse();

        first.Dispose();
        _tracker.IsProbeInFlight(_a).Should().BeFalse();
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var retry).Should().BeTrue();
        retry.IsProbe.Should().BeTrue();

        _tracker.RecordHealthy(retry);
        retry.Dispose();
        _tracker.IsProbeInFlight(_a).Should().BeFalse();
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var normal).Should().BeTrue();
        normal.IsProbe.Should().BeFalse();
    }

    [Fact]
    public void A_stale_probe_lease_never_frees_a_newer_probe()
    {
        var now = Eject(Now).AddSeconds(30);
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var first);
        first.Dispose();
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var second).Should().BeTrue();

        first.Dispose();

        _tracker.IsProbeInFlight(_a).Should().BeTrue("the second probe still holds the slot");
        second.Dispose();
    }

    [Fact]
    public void Unknown_backends_are_admitted_without_state()
    {
        _tracker.TryAdmit(_a, Now, _tracker.EjectionMark, out var lease).Should().BeTrue();
        lease.IsProbe.Should().BeFalse();
        lease.Health.Should().BeNull();
        _tracker.IsProbeInFlight(_a).Should().BeFalse();
    }

    private BackendLease Admit(DateTimeOffset now)
    {
        _tracker.TryAdmit(_a, now, _tracker.EjectionMark, out var lease).Should().BeTrue();
        return lease;
    }

    private (TimeSpan Duration, int Ejections)? Fail(DateTimeOffset now) => _tracker.RecordFailure(Admit(now), now, _options);

    private DateTimeOffset Eject(DateTimeOffset now)
    {
        for (var i = 0; i < 5; i++)
        {
            Fail(now);
        }

        return now;
    }
}
