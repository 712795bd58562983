using static TorchSharp.torch;

namespace SharpTune.Training.Optimization;

/// <summary>Stochastic gradient descent as <c>torch.optim.SGD</c>: L2 weight decay added to the gradient, optional
/// momentum (with dampening and Nesterov), the first momentum buffer being the gradient itself.</summary>
public sealed class Sgd : Optimizer
{
    private readonly Tensor?[] _momentum;

    public Sgd(IReadOnlyList<ParameterGroup> groups, double momentum = 0.0, double dampening = 0.0, bool nesterov = false) : base(groups)
    {
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires momentum > 0 and zero dampening");
        Momentum = momentum;
        Dampening = dampening;
        Nesterov = nesterov;
        _momentum = new Tensor?[Entries.Count];
    }

    public double Momentum { get; }
    public double Dampening { get; }
    public bool Nesterov { get; }

    protected override void Update(int index, Tensor weight, Tensor gradient, double learningRate, double weightDecay)
    {
        using var scope = NewDisposeScope();
        var direction = weightDecay != 0 ? gradient.add(weight, weightDecay) : gradient;
        if (Momentum != 0)
        {
            if (_momentum[index] is not { } buffer)
                _momentum[index] = buffer = direction.clone().DetachFromDisposeScope();
            else
                buffer.mul_(Momentum).add_(direction, 1 - Dampening);
            direction = Nesterov ? direction.add(buffer, Momentum) : buffer;
        }
        weight.add_(direction, -learningRate);
    }

    protected override IEnumerable<(string Suffix, Tensor Tensor)> StateOf(int index)
    {
        if (_momentum[index] is { } buffer)
            yield return ("momentum_buffer", buffer);
    }

    protected override void RestoreState(int index, string suffix, Tensor value)
    {
        if (suffix != "momentum_buffer")
            throw new InvalidDataException($"unknown SGD state '{suffix}' for parameter '{Entries[index].Name}'");
        _momentum[index]?.Dispose();
        _momentum[index] = value.to(WeightOf(index).dtype).clone().DetachFromDisposeScope();
    }

    public override void Dispose()
    {
        foreach (var t in _momentum)
            t?.Dispose();
        base.Dispose();
    }
}
