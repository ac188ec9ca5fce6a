using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting.Redis.Tests;

public sealed class PriorityRoutingRedisStoreOptionsValidationTests
{
    [Theory]
    [InlineData("", "KeyPrefix")]
    [InlineData("   ", "KeyPrefix")]
    [InlineData("app:*:", "KeyPrefix")]
    [InlineData("app[1]:", "KeyPrefix")]
    public void InvalidKeyPrefix_FailsResolution_NamingTheField(string keyPrefix, string field)
    {
        var failures = ResolveFailures(options => options.KeyPrefix = keyPrefix);

        failures.Should().ContainSingle().Which.Should().StartWith(field + " must not");
    }

    [Fact]
    public void BlankChannelName_FailsResolution_NamingTheField()
    {
        var failures = ResolveFailures(options => options.ChannelName = " ");

        failures.Should().ContainSingle().Which.Should().StartWith("ChannelName must be");
    }

    [Theory]
    [InlineData("")]
    [InlineData("password=secret-value")]
    [InlineData("127.0.0.1:6379,unknownKeyword=secret-value")]
    public void InvalidConfiguration_FailsResolution_NamingTheField_WithoutRepeatingIt(string configuration)
    {
        var failures = ResolveFailures(options => options.Configuration = configuration);

        failures.Should().ContainSingle().Which.Should().StartWith("Configuration must be")
            .And.NotContain("secret-value");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(86_400_001)]
    public void MaxUnavailabilityOutOfRange_FailsResolution_NamingTheField(long milliseconds)
    {
        var failures = ResolveFailures(options => options.MaxUnavailability = TimeSpan.FromMilliseconds(milliseconds));

        failures.Should().ContainSingle().Which.Should().StartWith("MaxUnavailability must be more than zero and at most one day");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(86_400_000)]
    public void MaxUnavailabilityAtTheBounds_IsValid(long milliseconds)
    {
        using var provider = new ServiceCollection()
            .AddPriorityRoutingRedisStore("127.0.0.1:1,connectTimeout=1000", options => options.MaxUnavailability = TimeSpan.FromMilliseconds(milliseconds))
            .BuildServiceProvider();

        provider.GetRequiredService<IBackendStateStore>().Should().NotBeNull();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1_001)]
    public void ReservationTimeoutOutOfRange_FailsResolution_NamingTheField(long milliseconds)
    {
        var failures = ResolveFailures(options => options.ReservationTimeout = TimeSpan.FromMilliseconds(milliseconds));

        failures.Should().ContainSingle().Which.Should().StartWith("ReservationTimeout must be more than zero and at most 1 second");
    }

    [Fact]
    public void Reservations_are_off_and_wait_20_ms_by_default()
    {
        var options = new PriorityRoutingRedisStoreOptions();

        options.Reservations.Should().BeFalse();
        options.ReservationTimeout.Should().Be(TimeSpan.FromMilliseconds(20));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(10_001)]
    public void BudgetPublishIntervalOutOfRange_FailsResolution_NamingTheField(long milliseconds)
    {
        var failures = ResolveFailures(options => options.BudgetPublishInterval = TimeSpan.FromMilliseconds(milliseconds));

        failures.Should().ContainSingle().Which.Should().StartWith("BudgetPublishInterval must be between zero and 10 seconds");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10_000)]
    public void BudgetPublishIntervalAtTheBounds_IsValid(long milliseconds)
    {
        using var provider = new ServiceCollection()
            .AddPriorityRoutingRedisStore("127.0.0.1:1,connectTimeout=1000", options => options.BudgetPublishInterval = TimeSpan.FromMilliseconds(milliseconds))
            .BuildServiceProvider();

        provider.GetRequiredService<IBackendStateStore>().Should().NotBeNull();
    }

    [Fact]
    public void SeveralInvalidFields_AreAllNamed()
    {
        var failures = ResolveFailures(options =>
        {
            options.KeyPrefix = "";
            options.ChannelName = "";
        });

        failures.Should().HaveCount(2);
        failures[0].Should().StartWith("KeyPrefix");
        failures[1].Should().StartWith("ChannelName");
    }

    [Fact]
    public void NoConfigurationAndNoMultiplexerInTheServiceCollection_FailsResolution_SayingWhatIsMissing()
    {
        using var provider = new ServiceCollection().AddPriorityRoutingRedisStore().BuildServiceProvider();

        var resolve = () => provider.GetRequiredService<IBackendStateStore>();

        resolve.Should().Throw<InvalidOperationException>()
            .WithMessage("The Redis store needs either PriorityRoutingRedisStoreOptions.Configuration or an IConnectionMultiplexer registered in the service collection.");
    }

    [Fact]
    public void Defaults_AreThePrefixAndAChannelDerivedFromIt()
    {
        var options = new PriorityRoutingRedisStoreOptions();

        options.KeyPrefix.Should().Be("polly:priority-routing:");
        options.ChannelName.Should().BeNull();
        options.EffectiveChannelName.Should().Be("polly:priority-routing:events");
        options.Configuration.Should().BeNull();
        options.MaxUnavailability.Should().Be(TimeSpan.FromMinutes(5));
        PriorityRoutingRedisStoreOptions.DefaultMaxUnavailability.Should().Be(TimeSpan.FromMinutes(5));
        options.BudgetPublishInterval.Should().Be(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void Registration_ReplacesAnyOtherStore()
    {
        var services = new ServiceCollection()
            .AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore())
            .AddPriorityRoutingRedisStore("127.0.0.1:1");

        services.Where(descriptor => descriptor.ServiceType == typeof(IBackendStateStore)).Should().ContainSingle()
            .Which.Lifetime.Should().Be(ServiceLifetime.Singleton);
    }

    private static IReadOnlyList<string> ResolveFailures(Action<PriorityRoutingRedisStoreOptions> configure)
    {
        using var provider = new ServiceCollection()
            .AddPriorityRoutingRedisStore("127.0.0.1:1", configure)
            .BuildServiceProvider();

        var resolve = () => provider.GetRequiredService<IBackendStateStore>();

        var exception = resolve.Should().Throw<OptionsValidationException>().Which;
        exception.OptionsType.Should().Be<PriorityRoutingRedisStoreOptions>();
        return [.. exception.Failures];
    }
}
